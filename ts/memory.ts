// A datagram network in memory: for browsers and edge runtimes, which have no UDP, and for
// running client and server engines side by side in one page or worker. Sockets bind
// `ip:port` in one table; a datagram sent to an address nobody bound is dropped, as UDP would.
// For tests it can be a poor network (seeded loss, duplicates, delay and jitter) on a clock
// that moves only when told (`ManualClock`).

import { invalidArgument, QuicwireError } from './errors.js';
import {
  type Clock,
  type DatagramNetwork,
  type DatagramSocket,
  ipFamily,
  realClock,
  soon,
} from './platform.js';

/** How datagrams fare on a MemoryNetwork. */
export interface LinkOptions {
  /** One-way delay (default 0: the next task). */
  delayMs?: number;
  /** Up to this much more delay, at random per datagram, so datagrams overtake each other. */
  jitterMs?: number;
  /** The chance a datagram is lost, 0 to 1. */
  loss?: number;
  /** The chance a datagram arrives twice, 0 to 1. */
  duplicate?: number;
}

export interface MemoryNetworkOptions extends LinkOptions {
  /** Seed of the randomness behind loss, duplicates and jitter (the same seed, the same run). */
  seed?: number;
  /** The clock engines on this network run on (default: the runtime's). */
  clock?: Clock;
}

/** mulberry32: a small seeded generator, uniform in [0, 1). */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function checkLink(link: LinkOptions): Required<LinkOptions> {
  const range = (name: string, v: number | undefined, max: number) => {
    const value = v ?? 0;
    if (typeof value !== 'number' || !(value >= 0 && value <= max)) {
      throw invalidArgument(`${name} must be between 0 and ${max}, got ${String(v)}`);
    }
    return value;
  };
  return {
    delayMs: range('delayMs', link.delayMs, 3_600_000),
    jitterMs: range('jitterMs', link.jitterMs, 3_600_000),
    loss: range('loss', link.loss, 1),
    duplicate: range('duplicate', link.duplicate, 1),
  };
}

type Receive = (data: Uint8Array, from: string) => void;

/** Port 0 binds one of the dynamic ports (49152-65535), in turn, as an OS would. */
const DYNAMIC_FIRST = 49152;
const DYNAMIC_COUNT = 65536 - DYNAMIC_FIRST;

export class MemoryNetwork implements DatagramNetwork {
  readonly clock: Clock;
  readonly #bound = new Map<string, Receive>();
  /** Where the search for a free dynamic port starts (an offset from DYNAMIC_FIRST). */
  #nextPort = 0;
  #link: Required<LinkOptions>;
  readonly #random: () => number;
  /** Datagrams sent so far (a cheap way to see traffic in tests and demos). */
  datagrams = 0;
  /** Datagrams the link lost, and those it delivered twice. */
  lost = 0;
  duplicated = 0;

  constructor(options: MemoryNetworkOptions = {}) {
    this.clock = options.clock ?? realClock;
    this.#link = checkLink(options);
    this.#random = random(options.seed ?? 1);
  }

  /** How datagrams fare from now on. */
  setLink(link: LinkOptions): void {
    this.#link = checkLink(link);
  }

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
        this.datagrams++;
        const link = this.#link;
        if (link.loss > 0 && this.#random() < link.loss) {
          this.lost++;
          return;
        }
        // Copied, as a real network would: the sender may reuse its buffer.
        const copy = data.slice();
        const deliver = () => (this.#bound.get(to) ?? this.#bound.get(wildcard(to)))?.(copy, self);
        const copies = link.duplicate > 0 && this.#random() < link.duplicate ? 2 : 1;
        if (copies === 2) this.duplicated++;
        for (let i = 0; i < copies; i++) {
          const delay = link.delayMs + link.jitterMs * this.#random();
          if (delay > 0) this.clock.setTimeout(deliver, delay);
          else soon(deliver);
        }
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
