// What `receive()` reads, on a connection and on an agent: arrivals no handler took, and the
// callers waiting for the next one.

import { QuicwireError } from './errors.js';
import { Fifo } from './fifo.js';

interface Taker<T> {
  resolve(value: T): void;
  reject(err: QuicwireError): void;
  timer: ReturnType<typeof setTimeout> | undefined;
  /** Timed out: left in the queue, passed over. */
  gone: boolean;
}

/** Arrivals (or errors in their place) for the oldest waiting taker, else kept in order. */
export class Inbox<T> {
  readonly #items = new Fifo<{ value: T } | { error: QuicwireError }>();
  readonly #takers = new Fifo<Taker<T>>();
  #closed: QuicwireError | undefined;

  /** `what`: where arrivals come from, for the timeout's message. */
  constructor(readonly what: string) {}

  put(value: T): void {
    const taker = this.#next();
    if (taker) taker.resolve(value);
    else this.#items.push({ value });
  }

  /** An arrival that could not be read: its taker gets `error` instead. */
  fail(error: QuicwireError): void {
    const taker = this.#next();
    if (taker) taker.reject(error);
    else this.#items.push({ error });
  }

  /** The next arrival: one kept, else the next to come (ERR_TIMEOUT after `timeoutMs`);
   *  once closed and emptied, the close's error. */
  take(timeoutMs?: number): Promise<T> {
    const next = this.#items.shift();
    if (next) return 'error' in next ? Promise.reject(next.error) : Promise.resolve(next.value);
    if (this.#closed) return Promise.reject(this.#closed);
    return new Promise<T>((resolve, reject) => {
      const taker: Taker<T> = { resolve, reject, timer: undefined, gone: false };
      if (timeoutMs !== undefined) {
        taker.timer = setTimeout(() => {
          taker.gone = true;
          reject(new QuicwireError('ERR_TIMEOUT', `no message from ${this.what} within ${timeoutMs} ms`));
        }, timeoutMs);
        taker.timer.unref?.();
      }
      this.#takers.push(taker);
    });
  }

  /** Every waiting taker gets `reason`, as will takes once what is kept is read. */
  close(reason: QuicwireError): void {
    this.#closed ??= reason;
    for (let t = this.#next(); t; t = this.#next()) t.reject(reason);
  }

  /** The oldest taker still waiting, its timer stopped. */
  #next(): Taker<T> | undefined {
    for (let t = this.#takers.shift(); t; t = this.#takers.shift()) {
      if (t.gone) continue;
      if (t.timer) clearTimeout(t.timer);
      return t;
    }
    return undefined;
  }
}
