// Framing for the transports that carry byte streams (node:tls, ws, and the QUIC peers'
// streams): `u8 kind | u32 id | u32 length | payload`. Both halves are written as a careful
// user of a byte stream writes them: small frames are copied into large chunks that go to
// the stream whole (no allocation and no write call per frame), large payloads go as they
// are (no copy), and the reader walks each chunk in place, copying only a frame that
// straddles two chunks.

export const Kind = { Message: 1, Request: 2, Response: 3, Count: 4, Bulk: 5, BulkDone: 6 } as const;
const HEADER = 9;

/** One frame on its own, for a stream that carries a single frame. */
export function frame(kind: number, id: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(HEADER + payload.length);
  writeHeader(out, 0, kind, id, payload.length);
  out.set(payload, HEADER);
  return out;
}

function writeHeader(out: Uint8Array, at: number, kind: number, id: number, length: number): void {
  out[at] = kind;
  out[at + 1] = id >>> 24;
  out[at + 2] = id >>> 16;
  out[at + 3] = id >>> 8;
  out[at + 4] = id;
  out[at + 5] = length >>> 24;
  out[at + 6] = length >>> 16;
  out[at + 7] = length >>> 8;
  out[at + 8] = length;
}

function readU32(b: Uint8Array, at: number): number {
  const high = (b[at] as number) * 2 ** 24;
  return high + (((b[at + 1] as number) << 16) | ((b[at + 2] as number) << 8) | (b[at + 3] as number));
}

export function u64(n: number): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt(n));
  return out;
}

export function readU64(b: Uint8Array): number {
  return Number(new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0));
}

/** A frame as the reader hands it out: its payload is `bytes[start, end)`, valid only during
 *  the call (the stream may reuse the memory; copy it to keep it). */
export type OnFrame = (kind: number, id: number, bytes: Uint8Array, start: number, end: number) => void;

/** Yields whole frames from a byte stream's chunks. */
export class FrameReader {
  /** A frame that began in an earlier chunk: its header so far, then the whole frame. */
  #head = new Uint8Array(HEADER);
  #frame: Uint8Array | undefined;
  /** Bytes of that frame received; 0 between frames. */
  #filled = 0;

  push(chunk: Uint8Array, onFrame: OnFrame): void {
    let at = this.#filled > 0 ? this.#finish(chunk, onFrame) : 0;
    if (at < 0) return;
    const n = chunk.length;
    while (n - at >= HEADER) {
      const end = at + HEADER + readU32(chunk, at + 5);
      if (end > n) break;
      onFrame(chunk[at] as number, readU32(chunk, at + 1), chunk, at + HEADER, end);
      at = end;
    }
    if (at < n) this.#begin(chunk.subarray(at));
  }

  /** Keeps the start of a frame that the chunk ends inside. */
  #begin(rest: Uint8Array): void {
    if (rest.length >= HEADER) {
      this.#frame = new Uint8Array(HEADER + readU32(rest, 5));
      this.#frame.set(rest);
    } else {
      this.#head.set(rest);
    }
    this.#filled = rest.length;
  }

  /** Completes the frame begun earlier from the chunk's start: where the chunk's next frame
   *  starts, or -1 when the chunk ended first. */
  #finish(chunk: Uint8Array, onFrame: OnFrame): number {
    let used = 0;
    if (!this.#frame) {
      used = Math.min(HEADER - this.#filled, chunk.length);
      this.#head.set(chunk.subarray(0, used), this.#filled);
      this.#filled += used;
      if (this.#filled < HEADER) return -1;
      this.#frame = new Uint8Array(HEADER + readU32(this.#head, 5));
      this.#frame.set(this.#head);
    }
    const f = this.#frame;
    const take = Math.min(f.length - this.#filled, chunk.length - used);
    f.set(chunk.subarray(used, used + take), this.#filled);
    this.#filled += take;
    if (this.#filled < f.length) return -1;
    this.#frame = undefined;
    this.#filled = 0;
    onFrame(f[0] as number, readU32(f, 1), f, HEADER, f.length);
    return used + take;
  }
}

/** Where a FrameWriter's data goes: returns undefined when taken, or a promise that settles
 *  once the sink can take more (a socket's drain, an awaited stream write). */
type Sink = (data: Uint8Array) => Promise<void> | undefined;

const CHUNK = 64 << 10;
/** Payloads this large go to the sink as they are, after their header. */
const LARGE = 16 << 10;
/** A chunk with less room left than this is replaced rather than continued. */
const ROOM = 4 << 10;
/** Uninitialized, as Node code that writes a buffer before sending it allocates one: an
 *  idle connection's chunk costs only the pages written. */
const newChunk = () => Buffer.allocUnsafe(CHUNK);

/**
 * Frames into chunks: a chunk goes to the sink when full, and what a task wrote goes at the
 * end of it (a microtask), so a request is never held back. One sink call is in flight at a
 * time; `push` asks its caller to wait while more than `high` bytes are queued.
 */
export class FrameWriter {
  #chunk: Uint8Array = newChunk();
  #used = 0;
  #ready: Uint8Array[] = [];
  /** Bytes pushed and not yet given to the sink. */
  #queued = 0;
  #busy = false;
  #scheduled = false;
  #waiters: (() => void)[] = [];

  constructor(
    private readonly sink: Sink,
    private readonly high = 4 << 20,
  ) {}

  push(kind: number, id: number, payload: Uint8Array): Promise<void> | undefined {
    const large = payload.length >= LARGE;
    const size = HEADER + (large ? 0 : payload.length);
    if (size > this.#chunk.length - this.#used) {
      this.#seal();
      if (size > this.#chunk.length) this.#chunk = newChunk();
    }
    writeHeader(this.#chunk, this.#used, kind, id, payload.length);
    if (!large) this.#chunk.set(payload, this.#used + HEADER);
    this.#used += size;
    this.#queued += size;
    if (large) {
      this.#seal();
      this.#enqueue(payload);
    } else if (!this.#scheduled) {
      this.#scheduled = true;
      queueMicrotask(() => {
        this.#scheduled = false;
        this.#seal();
      });
    }
    if (this.#queued <= this.high) return undefined;
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** Resolves once everything pushed so far has gone to the sink. */
  async flush(): Promise<void> {
    this.#seal();
    while (this.#queued > 0) await new Promise<void>((resolve) => this.#waiters.push(resolve));
  }

  /** Hands what the chunk holds to the sink; the rest of the chunk is the next one. */
  #seal(): void {
    if (this.#used === 0) return;
    const data = this.#chunk.subarray(0, this.#used);
    const rest = this.#chunk.subarray(this.#used);
    this.#chunk = rest.length >= ROOM ? rest : newChunk();
    this.#used = 0;
    this.#queued -= data.length;
    this.#enqueue(data);
  }

  #enqueue(data: Uint8Array): void {
    this.#ready.push(data);
    this.#queued += data.length;
    this.#pump();
  }

  #pump(): void {
    while (!this.#busy && this.#ready.length > 0) {
      const data = this.#ready.shift() as Uint8Array;
      this.#queued -= data.length;
      const wait = this.sink(data);
      if (wait) {
        this.#busy = true;
        void wait.then(() => {
          this.#busy = false;
          this.#pump();
        });
      }
    }
    if (this.#queued <= this.high / 2) for (const wake of this.#waiters.splice(0)) wake();
  }
}

/** The server side every stream transport shares: count messages and each bulk transfer's
 *  bytes, echo requests. */
export class FrameServer {
  messages = 0;
  bulkBytes = 0;

  handle(
    kind: number,
    id: number,
    bytes: Uint8Array,
    start: number,
    end: number,
    reply: (kind: number, id: number, payload: Uint8Array) => void,
  ): void {
    switch (kind) {
      case Kind.Message:
        this.messages++;
        break;
      case Kind.Bulk:
        this.bulkBytes += end - start;
        break;
      case Kind.Request:
        reply(Kind.Response, id, bytes.subarray(start, end));
        break;
      case Kind.Count:
        reply(Kind.Response, id, u64(this.messages));
        break;
      case Kind.BulkDone:
        // Bytes of this transfer only: a connection carries the warm-up transfer first.
        reply(Kind.Response, id, u64(this.bulkBytes));
        this.bulkBytes = 0;
        break;
    }
  }
}
