// The bus's frames: each is one quicwire body (raw encoding), a kind byte, a few fields,
// and the application's payload (its MessagePack bytes) as the rest, so the bus routes a
// payload without decoding it. docs/BUS.md has the layout.

import { QuicwireError } from '../errors.js';
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
  #view: DataView;
  #len = 0;

  constructor(size = 64) {
    this.#buf = new Uint8Array(size);
    this.#view = new DataView(this.#buf.buffer);
  }

  u8(v: number): this {
    this.#room(1);
    this.#buf[this.#len++] = v;
    return this;
  }

  u16(v: number): this {
    this.#room(2);
    this.#view.setUint16(this.#len, v);
    this.#len += 2;
    return this;
  }

  u32(v: number): this {
    this.#room(4);
    this.#view.setUint32(this.#len, v);
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

  /** The frame (its own bytes). */
  done(): Uint8Array {
    return this.#buf.subarray(0, this.#len);
  }

  #room(n: number): void {
    if (this.#len + n <= this.#buf.length) return;
    const grown = new Uint8Array(Math.max(this.#len + n, this.#buf.length * 2));
    grown.set(this.#buf.subarray(0, this.#len));
    this.#buf = grown;
    this.#view = new DataView(grown.buffer);
  }
}

/** Reads a frame; a short or malformed one throws ERR_PROTOCOL. */
export class FrameReader {
  readonly #buf: Uint8Array;
  readonly #view: DataView;
  #at = 0;

  constructor(buf: Uint8Array) {
    this.#buf = buf;
    this.#view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
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
    const v = this.#view.getUint16(this.#at);
    this.#at += 2;
    return v;
  }

  u32(): number {
    this.#need(4);
    const v = this.#view.getUint32(this.#at);
    this.#at += 4;
    return v;
  }

  str(): string {
    const n = this.u8();
    this.#need(n);
    const s = utf8Decoder.decode(this.#buf.subarray(this.#at, this.#at + n));
    this.#at += n;
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

/** An answer's status and text as the error it stands for. */
export function statusError(status: number, message: string): QuicwireError {
  const code: ErrorCode = ERROR_CODES[status] ?? 'ERR_REMOTE';
  return new QuicwireError(code, message);
}

/** An error's status number. */
export function statusOf(err: unknown): number {
  const code = err instanceof QuicwireError ? err.code : 'ERR_INTERNAL';
  return ERROR_CODES.indexOf(code);
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
