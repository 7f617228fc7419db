// Time that moves only when told: engines on a MemoryNetwork with a ManualClock run their
// timeouts, keep-alives and retransmissions on it, so a test of a 30-second timeout takes
// no wall-clock time and does the same every run.

import { invalidArgument } from './errors.js';
import type { Clock } from './platform.js';

interface Timer {
  at: number;
  seq: number;
  f: () => void;
}

/** Lets a macrotask pass: what the last step set off (datagrams, promises) runs first. */
function settle(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

export class ManualClock implements Clock {
  #now = 0;
  #seq = 0;
  #timers: Timer[] = [];

  now(): number {
    return this.#now;
  }

  setTimeout(f: () => void, ms: number): unknown {
    const timer = { at: this.#now + Math.max(0, ms), seq: this.#seq++, f };
    this.#timers.push(timer);
    return timer;
  }

  clearTimeout(timer: unknown): void {
    this.#timers = this.#timers.filter((t) => t !== timer);
  }

  /** Moves time on by `ms`, running every timer that falls due on the way, in order, and
   *  letting what each sets off (datagrams, answers, promises) run before the next. */
  async advance(ms: number): Promise<void> {
    if (!Number.isFinite(ms) || ms < 0) throw invalidArgument(`advance takes a duration in ms, got ${ms}`);
    const end = this.#now + ms;
    await settle();
    for (;;) {
      const next = this.#timers.reduce<Timer | undefined>(
        (a, t) => (t.at <= end && (!a || t.at < a.at || (t.at === a.at && t.seq < a.seq)) ? t : a),
        undefined,
      );
      if (!next) break;
      this.#timers = this.#timers.filter((t) => t !== next);
      this.#now = Math.max(this.#now, next.at);
      next.f();
      await settle();
    }
    this.#now = end;
    await settle();
  }
}
