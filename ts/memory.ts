// A datagram network in memory: for browsers and edge runtimes, which have no UDP, and for
// running client and server engines side by side in one page or worker. Sockets bind
// `ip:port` in one table; a datagram sent to an address nobody bound is dropped, as UDP would.

import { QuicwireError } from './errors.js';
import { type DatagramNetwork, type DatagramSocket, ipFamily, soon } from './platform.js';

type Receive = (data: Uint8Array, from: string) => void;

/** Port 0 binds one of the dynamic ports (49152-65535), in turn, as an OS would. */
const DYNAMIC_FIRST = 49152;
const DYNAMIC_COUNT = 65536 - DYNAMIC_FIRST;

export class MemoryNetwork implements DatagramNetwork {
  readonly #bound = new Map<string, Receive>();
  /** Where the search for a free dynamic port starts (an offset from DYNAMIC_FIRST). */
  #nextPort = 0;
  /** Datagrams moved so far (a cheap way to see traffic in tests and demos). */
  datagrams = 0;

  async resolve(host: string): Promise<{ address: string; family: 4 | 6 }> {
    const bare = host.replace(/^\[|\]$/g, '');
    const family = ipFamily(bare);
    if (family !== 0) return { address: bare, family };
    if (host === 'localhost') return { address: '127.0.0.1', family: 4 };
    throw new QuicwireError(
      'ERR_IO',
      `cannot resolve ${host}: the memory network knows IP addresses and localhost only`,
    );
  }

  async bind(
    family: 4 | 6,
    host: string | undefined,
    port: number,
    receive: Receive,
  ): Promise<DatagramSocket> {
    const ip = host ?? (family === 6 ? '::1' : '127.0.0.1');
    const key = (p: number) => (family === 6 ? `[${ip}]:${p}` : `${ip}:${p}`);
    let chosen = port;
    if (chosen === 0) {
      // Closed sockets give their ports back: the search wraps, so it never runs out while
      // any port is free.
      for (let tried = 0; tried < DYNAMIC_COUNT && chosen === 0; tried++) {
        const p = DYNAMIC_FIRST + ((this.#nextPort + tried) % DYNAMIC_COUNT);
        if (!this.#bound.has(key(p))) chosen = p;
      }
      if (chosen === 0) throw new QuicwireError('ERR_IO', `cannot bind ${ip}: every dynamic port is in use`);
      this.#nextPort = (chosen - DYNAMIC_FIRST + 1) % DYNAMIC_COUNT;
    } else if (this.#bound.has(key(chosen))) {
      throw new QuicwireError('ERR_IO', `cannot bind ${key(chosen)}: address in use`);
    }
    const self = key(chosen);
    this.#bound.set(self, receive);
    return {
      port: chosen,
      send: (data, to) => {
        // Copied, as a real network would: the sender may reuse its buffer.
        const copy = data.slice();
        this.datagrams++;
        soon(() => (this.#bound.get(to) ?? this.#bound.get(wildcard(to)))?.(copy, self));
      },
      close: () => {
        if (this.#bound.get(self) === receive) this.#bound.delete(self);
      },
    };
  }
}

/** `0.0.0.0:port` or `[::]:port`: where a socket bound to every address listens. */
function wildcard(addr: string): string {
  const port = addr.slice(addr.lastIndexOf(':'));
  return addr.startsWith('[') ? `[::]${port}` : `0.0.0.0${port}`;
}
