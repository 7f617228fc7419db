// Framing for the transports that carry byte streams (node:tls, ws, and the QUIC peers'
// streams): `u8 kind | u32 id | u32 length | payload`, read without quadratic copying.

export const Kind = { Message: 1, Request: 2, Response: 3, Count: 4, Bulk: 5, BulkDone: 6 } as const;
export const HEADER = 9;

export function frame(kind: number, id: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(HEADER + payload.length);
  const view = new DataView(out.buffer);
  out[0] = kind;
  view.setUint32(1, id);
  view.setUint32(5, payload.length);
  out.set(payload, HEADER);
  return out;
}

export function u64(n: number): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt(n));
  return out;
}

export function readU64(b: Uint8Array): number {
  return Number(new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0));
}

/** Collects chunks and yields whole frames. */
export class FrameReader {
  #chunks: Uint8Array[] = [];
  #length = 0;

  push(chunk: Uint8Array, onFrame: (kind: number, id: number, payload: Uint8Array) => void): void {
    this.#chunks.push(chunk);
    this.#length += chunk.length;
    while (this.#length >= HEADER) {
      const head = this.#peek(HEADER);
      const view = new DataView(head.buffer, head.byteOffset, HEADER);
      const len = view.getUint32(5);
      if (this.#length < HEADER + len) return;
      const whole = this.#take(HEADER + len);
      onFrame(whole[0] as number, view.getUint32(1), whole.subarray(HEADER));
    }
  }

  #peek(n: number): Uint8Array {
    const first = this.#chunks[0] as Uint8Array;
    if (first.length >= n) return first;
    this.#merge();
    return this.#chunks[0] as Uint8Array;
  }

  #take(n: number): Uint8Array {
    let first = this.#chunks[0] as Uint8Array;
    if (first.length < n) {
      this.#merge();
      first = this.#chunks[0] as Uint8Array;
    }
    const out = first.subarray(0, n);
    if (first.length === n) this.#chunks.shift();
    else this.#chunks[0] = first.subarray(n);
    this.#length -= n;
    return out;
  }

  #merge(): void {
    const all = new Uint8Array(this.#length);
    let at = 0;
    for (const c of this.#chunks) {
      all.set(c, at);
      at += c.length;
    }
    this.#chunks = [all];
  }
}

/** The server side every stream transport shares: count messages and each bulk transfer's
 *  bytes, echo requests. */
export class FrameServer {
  messages = 0;
  bulkBytes = 0;

  handle(kind: number, id: number, payload: Uint8Array, reply: (frame: Uint8Array) => void): void {
    switch (kind) {
      case Kind.Message:
        this.messages++;
        break;
      case Kind.Bulk:
        this.bulkBytes += payload.length;
        break;
      case Kind.Request:
        reply(frame(Kind.Response, id, payload));
        break;
      case Kind.Count:
        reply(frame(Kind.Response, id, u64(this.messages)));
        break;
      case Kind.BulkDone:
        // Bytes of this transfer only: a connection carries the warm-up transfer first.
        reply(frame(Kind.Response, id, u64(this.bulkBytes)));
        this.bulkBytes = 0;
        break;
    }
  }
}

/**
 * Coalesces frames written while a write is in flight into the next write: how a careful
 * user drives a transport whose write() is asynchronous and costly per call.
 */
export class CoalescingWriter {
  #queue: Uint8Array[] = [];
  #queued = 0;
  #writing: Promise<void> | undefined;
  #waiters: (() => void)[] = [];

  constructor(
    private readonly write: (data: Uint8Array) => Promise<void>,
    private readonly high = 4 << 20,
  ) {}

  push(data: Uint8Array): Promise<void> | undefined {
    this.#queue.push(data);
    this.#queued += data.length;
    this.#writing ??= this.#loop();
    if (this.#queued < this.high) return undefined;
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  async flush(): Promise<void> {
    while (this.#writing) await this.#writing;
  }

  async #loop(): Promise<void> {
    while (this.#queue.length > 0) {
      const parts = this.#queue;
      const size = this.#queued;
      this.#queue = [];
      this.#queued = 0;
      for (const w of this.#waiters.splice(0)) w();
      let data: Uint8Array;
      if (parts.length === 1) data = parts[0] as Uint8Array;
      else {
        data = new Uint8Array(size);
        let at = 0;
        for (const p of parts) {
          data.set(p, at);
          at += p.length;
        }
      }
      await this.write(data);
    }
    this.#writing = undefined;
  }
}
