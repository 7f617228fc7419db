// The bus's frames: each is one quicwire body (raw encoding), a kind byte, a few fields,
// and the application's payload (its MessagePack bytes) as the rest, so the bus routes a
// payload without decoding it. docs/BUS.md has the layout.

import { codeNumber, codeOf, QuicwireError } from '../errors.js';
import { ERROR_CODES, type ErrorCode } from '../layout.js';

/** Frame kinds. Agent to bus: SEND..GATHER; bus to agent: DELIVER..CALL. */
export const Kind = {
  /** Message `[seq u32][to str][payload]`: to the agent named `to`. */
  Send: 1,
  /** Message `[seq u32][subject str][payload]`: to the subject's subscribers. */
  Publish: 2,
  /** Message `[seq u32][payload]`: to every other agent. */
  Broadcast: 3,
  /** Request `[msgpack control]`: hello, subscribe, unsubscribe, agents, leases. */
  Control: 20,
  /** Request `[timeout u32][to str][payload]`: to the agent named `to`. */
  Request: 21,
  /** Request `[timeout u32][want u32][subject str][key str][payload]`: to the subject's
   *  subscribers (one per queue group; `key`, when not empty, picks it), the first `want`
   *  answers (0: all). */
  Gather: 22,
  /** Message `[from str][payload]`: a message sent to this agent. */
  Deliver: 10,
  /** Message `[n u16][sid u32 × n][subject str][from str][payload]`: a published message
   *  for this agent's subscriptions `sid`. */
  Event: 11,
  /** Message `([seq u32][status u16][count u32])*`: what became of sends and publishes. */
  Ack: 12,
  /** Message `[joined u8][name str]`: presence, to agents that watch it. */
  Presence: 13,
  /** Request `[from str][payload]`: a request to this agent; the answer is the payload. */
  Call: 30,
  /** Request `[n u16][sid u32 × n][subject str][from str][payload]`: an ask on a subject. */
  CallSubject: 31,
} as const;

/** The status of an answer or ack that succeeded; otherwise an error code's number. */
export const OK = 0xffff;

const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder();

/** Builds a frame. Strings are u8-length-prefixed UTF-8 (names and subjects: 255 bytes). */
export class FrameWriter {
  #buf: Uint8Array;
  #len = 0;

  constructor(size = 64) {
    this.#buf = new Uint8Array(size);
  }

  /** The shared writer, emptied: for a frame that is sent (and so copied) at once. Its
   *  `done()` is valid until the next `scratch()`. */
  static scratch(): FrameWriter {
    scratch.#len = 0;
    return scratch;
  }

  u8(v: number): this {
    this.#room(1);
    this.#buf[this.#len++] = v;
    return this;
  }

  u16(v: number): this {
    this.#room(2);
    const b = this.#buf;
    b[this.#len] = v >>> 8;
    b[this.#len + 1] = v;
    this.#len += 2;
    return this;
  }

  u32(v: number): this {
    this.#room(4);
    const b = this.#buf;
    const at = this.#len;
    b[at] = v >>> 24;
    b[at + 1] = v >>> 16;
    b[at + 2] = v >>> 8;
    b[at + 3] = v;
    this.#len += 4;
    return this;
  }

  str(s: string): this {
    this.#room(1 + s.length * 3);
    const { written } = utf8.encodeInto(s, this.#buf.subarray(this.#len + 1));
    if (written > 255)
      throw new QuicwireError('ERR_INVALID_ARGUMENT', `${JSON.stringify(s)} is over 255 bytes`);
    this.#buf[this.#len] = written;
    this.#len += 1 + written;
    return this;
  }

  bytes(b: Uint8Array): this {
    this.#room(b.length);
    this.#buf.set(b, this.#len);
    this.#len += b.length;
    return this;
  }

  /** The frame so far. */
  done(): Uint8Array {
    return this.#buf.subarray(0, this.#len);
  }

  #room(n: number): void {
    if (this.#len + n <= this.#buf.length) return;
    const grown = new Uint8Array(Math.max(this.#len + n, this.#buf.length * 2));
    grown.set(this.#buf.subarray(0, this.#len));
    this.#buf = grown;
  }
}

const scratch = new FrameWriter(1 << 16);

/** Reads a frame; a short or malformed one throws ERR_PROTOCOL. */
export class FrameReader {
  readonly #buf: Uint8Array;
  #at = 0;

  constructor(buf: Uint8Array) {
    this.#buf = buf;
  }

  get done(): boolean {
    return this.#at >= this.#buf.length;
  }

  u8(): number {
    this.#need(1);
    return this.#buf[this.#at++] as number;
  }

  u16(): number {
    this.#need(2);
    const b = this.#buf;
    const at = this.#at;
    this.#at += 2;
    return ((b[at] as number) << 8) | (b[at + 1] as number);
  }

  u32(): number {
    this.#need(4);
    const b = this.#buf;
    const at = this.#at;
    this.#at += 4;
    return (
      (((b[at] as number) << 24) |
        ((b[at + 1] as number) << 16) |
        ((b[at + 2] as number) << 8) |
        (b[at + 3] as number)) >>>
      0
    );
  }

  str(): string {
    const n = this.u8();
    this.#need(n);
    const b = this.#buf;
    const from = this.#at;
    this.#at += n;
    // Names and subjects are mostly short ASCII, which this reads without a decoder call.
    let s = '';
    for (let i = from; i < from + n; i++) {
      const c = b[i] as number;
      if (c >= 0x80) return utf8Decoder.decode(b.subarray(from, from + n));
      s += String.fromCharCode(c);
    }
    return s;
  }

  /** `n` bytes (a view). */
  bytes(n: number): Uint8Array {
    this.#need(n);
    const b = this.#buf.subarray(this.#at, this.#at + n);
    this.#at += n;
    return b;
  }

  /** The rest (a view). */
  rest(): Uint8Array {
    const b = this.#buf.subarray(this.#at);
    this.#at = this.#buf.length;
    return b;
  }

  #need(n: number): void {
    if (this.#at + n > this.#buf.length) {
      throw new QuicwireError('ERR_PROTOCOL', 'a bus frame ended early');
    }
  }
}

/** The code a status stands for: a number unknown here (a newer bus's) reads as
 *  ERR_REMOTE, as in ERROR frames. */
export function statusCode(status: number): ErrorCode {
  return status < ERROR_CODES.length ? codeOf(status) : 'ERR_REMOTE';
}

/** An answer's status and text as the error it stands for. */
export function statusError(status: number, message: string): QuicwireError {
  return new QuicwireError(statusCode(status), message);
}

/** An error's status number. */
export function statusOf(err: unknown): number {
  return codeNumber(err instanceof QuicwireError ? err.code : 'ERR_INTERNAL');
}

/** An answer: OK and the payload, or an error's status and message. */
export function answer(status: number, body: Uint8Array | string): Uint8Array {
  const w = new FrameWriter(3 + body.length * 3).u16(status);
  return w.bytes(typeof body === 'string' ? utf8.encode(body) : body).done();
}

/** The payload of an answer, or the error it carries. */
export function readAnswer(frame: Uint8Array): Uint8Array {
  const r = new FrameReader(frame);
  const status = r.u16();
  const body = r.rest();
  if (status !== OK) throw statusError(status, utf8Decoder.decode(body));
  return body;
}
