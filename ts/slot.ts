// One engine (a client or a server) as the backend holds it: its I/O, the handshakes
// `connect` waits on, and a graceful close's wait for requests in flight.

import type { StreamCarrier } from './carrier.js';
import type { Carrier, ConnectionInfo } from './engine.js';
import type { QuicwireError } from './errors.js';
import type { EngineIo, ShellEngine } from './shell.js';

interface Waiter {
  resolve(info: ConnectionInfo): void;
  reject(err: QuicwireError): void;
}

export class Slot<E extends ShellEngine> {
  io!: EngineIo;
  tunnels!: StreamCarrier;
  /** A client's carrier: UDP, TCP tunnels, or both raced. */
  carrier: Carrier = 'udp';
  fallbackDelayMs = 0;
  /** With carrier 'webtransport': the path of the servers' sessions. */
  webPath = '/';
  /** The tunnel of each connection carried over TCP, closed when the connection closes. */
  readonly tunnelOf = new Map<number, string>();
  /** Connections whose handshake is done, until they close. */
  readonly #ready = new Map<number, ConnectionInfo>();
  /** `connect` calls waiting for a handshake. */
  readonly #waiters = new Map<number, Waiter[]>();
  /** Resolved once no request is being served (graceful close). */
  drained: (() => void) | undefined;
  closed = false;
  /** A step is scheduled for after the current task (coalesced writes). */
  stepSoon = false;

  constructor(
    readonly id: number,
    readonly engine: E,
  ) {}

  /** The connection's info once its handshake is done. */
  handshake(id: number): Promise<ConnectionInfo> {
    const ready = this.#ready.get(id);
    if (ready) return Promise.resolve(ready);
    return new Promise((resolve, reject) => {
      const list = this.#waiters.get(id) ?? [];
      list.push({ resolve, reject });
      this.#waiters.set(id, list);
    });
  }

  isConnected(id: number): boolean {
    return this.#ready.has(id);
  }

  connected(id: number, info: ConnectionInfo): void {
    this.#ready.set(id, info);
    for (const w of this.#waiters.get(id) ?? []) w.resolve(info);
    this.#waiters.delete(id);
  }

  /** The connection closed; `error` (made only when someone waits) rejects its waiters. */
  disconnected(id: number, error: () => QuicwireError): void {
    this.#ready.delete(id);
    const waiting = this.#waiters.get(id);
    if (!waiting) return;
    const err = error();
    for (const w of waiting) w.reject(err);
    this.#waiters.delete(id);
  }
}
