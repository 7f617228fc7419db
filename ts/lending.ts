// Large message bodies lent to a handler that borrows them, instead of a buffer each: the
// engine copies a batch's large bodies into one buffer that is reused batch after batch, and
// the handler gets views of it (valid until it returns).

import type { EventBatch } from './engine.js';
import { EVENT_WORDS } from './layout.js';
import type { ShellEngine } from './shell.js';

/** Lent bodies go in a buffer of at least LEND_MIN bytes, reused batch after batch; a
 *  batch whose lent bodies take more than LEND_MAX (a default sendBufferHigh: what a peer
 *  sends before it waits for delivery) gets buffers of its own. At most LEND_SPARE
 *  buffers wait for reuse, so what is kept stays bounded. */
const LEND_MIN = 1 << 20;
const LEND_MAX = 8 << 20;
const LEND_SPARE = 2;

export class Lender {
  /** Buffers that no batch uses now. */
  #spare: Uint8Array[] = [];

  /** Copies the batch's large bodies (`bytes` in all) into a reused buffer, which it
   *  returns, and makes them views of it; or gives them buffers of their own when they
   *  are too large to lend. */
  lend(engine: ShellEngine, batch: EventBatch, bytes: number): Uint8Array | undefined {
    if (bytes > LEND_MAX) {
      batch.bodies = engine.takeEventBodies();
      return undefined;
    }
    let into = this.#spare.pop();
    if (!into || into.length < bytes) {
      into = new Uint8Array(Math.max(LEND_MIN, 2 ** Math.ceil(Math.log2(bytes))));
    }
    engine.copyEventBodies(into); // fits: `bytes` is what they take
    const { meta } = batch;
    const bodies: Uint8Array[] = [];
    for (let i = 0, at = 0; i < meta.length; i += EVENT_WORDS) {
      if ((meta[i + 5] as number) >= 0) continue;
      const length = meta[i + 6] as number;
      bodies.push(into.subarray(at, at + length));
      at += length;
    }
    batch.bodies = bodies;
    batch.lent = true;
    return into;
  }

  /** A buffer its batch is done with (the handler returned). */
  giveBack(buffer: Uint8Array): void {
    if (this.#spare.length < LEND_SPARE) this.#spare.push(buffer);
  }
}
