// A datagram network in memory: for browsers and edge runtimes, which have no UDP, and for
// running client and server engines side by side in one page or worker. Sockets bind
// `ip:port` in one table; a datagram sent to an address nobody bound is dropped, as UDP would.

import { QuicwireError } from './errors.js';
import { type DatagramNetwork, type DatagramSocket, ipFamily, soon } from './platform.js';

type Receive = (data: Uint8Array, from: string) => void;

export class MemoryNetwork implements DatagramNetwork {
  readonly #bound = new Map<string, Receive>();
  #nextPort = 49152;
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
      while (this.#bound.has(key(this.#nextPort))) this.#nextPort++;
      chosen = this.#nextPort++;
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
