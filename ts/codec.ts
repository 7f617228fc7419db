// Message encodings. Bodies are encoded once on the sending side and decoded on the
// receiving side, here in JS; the engine only frames bytes.

import { Packr } from 'msgpackr';
import { QuicwireError } from './errors.js';
import type { Encoding } from './types.js';

const packr = new Packr({ useRecords: false, moreTypes: true });
const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8', { fatal: true });

function encodeError(encoding: Encoding, reason: string, cause?: unknown): QuicwireError {
  return new QuicwireError('ERR_ENCODE', `cannot encode message as ${encoding}: ${reason}`, {
    cause,
  });
}

/** Checks what no encoding can carry, before an encoder silently drops it. */
function assertEncodable(value: unknown, encoding: Encoding): void {
  const t = typeof value;
  if (t === 'function' || t === 'symbol' || value === undefined) {
    throw encodeError(encoding, `a ${value === undefined ? 'undefined' : t} is not a message`);
  }
}

/** Encoded bodies are views into arenas: a small typed array of its own costs V8 a
 *  backing-store allocation each. An arena is never written twice, so a view stays valid
 *  for as long as it is held; a full one is left to the views that still hold it. */
const ARENA = 1 << 16;
let arena = new Uint8Array(ARENA);
let arenaUsed = 0;

function take(n: number): Uint8Array {
  if (n > ARENA / 4) return new Uint8Array(n);
  if (arenaUsed + n > arena.length) {
    arena = new Uint8Array(ARENA);
    arenaUsed = 0;
  }
  arenaUsed += n;
  return arena.subarray(arenaUsed - n, arenaUsed);
}

/**
 * Bytes as MessagePack `bin`, written here: the standard form, which every MessagePack
 * library reads as bytes (msgpackr's own typed-array extension is msgpackr-only), and the
 * most common message of all, so it skips the general encoder.
 */
function packBytes(bytes: Uint8Array): Uint8Array {
  const n = bytes.length;
  const head = n < 0x100 ? 2 : n < 0x10000 ? 3 : 5;
  const out = take(head + n);
  if (head === 2) {
    out[0] = 0xc4;
    out[1] = n;
  } else if (head === 3) {
    out[0] = 0xc5;
    out[1] = n >>> 8;
    out[2] = n;
  } else {
    out[0] = 0xc6;
    out[1] = n >>> 24;
    out[2] = n >>> 16;
    out[3] = n >>> 8;
    out[4] = n;
  }
  out.set(bytes, head);
  return out;
}

/** A body that is one MessagePack `bin` and nothing else: its bytes (a view), or undefined. */
function unpackBytes(body: Uint8Array): Uint8Array | undefined {
  const tag = body[0];
  let head: number;
  let n: number;
  if (tag === 0xc4 && body.length >= 2) {
    head = 2;
    n = body[1] as number;
  } else if (tag === 0xc5 && body.length >= 3) {
    head = 3;
    n = ((body[1] as number) << 8) | (body[2] as number);
  } else if (tag === 0xc6 && body.length >= 5) {
    head = 5;
    n =
      (body[1] as number) * 2 ** 24 +
      (((body[2] as number) << 16) | ((body[3] as number) << 8) | (body[4] as number));
  } else {
    return undefined;
  }
  return head + n === body.length ? body.subarray(head) : undefined;
}

export function encode(value: unknown, encoding: Encoding): Uint8Array {
  if (encoding === 'raw') {
    if (value instanceof Uint8Array) return value;
    throw encodeError('raw', 'the raw encoding sends Uint8Array (or Buffer) messages only');
  }
  if (encoding === 'msgpack' && value instanceof Uint8Array) return packBytes(value);
  assertEncodable(value, encoding);
  try {
    if (encoding === 'json') {
      const text = JSON.stringify(value);
      if (text === undefined) throw encodeError('json', 'value has no JSON form');
      return utf8.encode(text);
    }
    return packr.pack(value);
  } catch (err) {
    if (err instanceof QuicwireError) throw err;
    const reason = err instanceof RangeError ? 'circular or too deeply nested' : String(err);
    throw encodeError(encoding, reason, err);
  }
}

export function decode(bytes: Uint8Array, encoding: Encoding): unknown {
  if (encoding === 'raw') return bytes;
  try {
    if (encoding === 'json') return JSON.parse(utf8Decoder.decode(bytes));
    return unpackBytes(bytes) ?? packr.unpack(bytes);
  } catch (err) {
    throw new QuicwireError('ERR_DECODE', `cannot decode ${encoding} message: ${String(err)}`, {
      cause: err,
    });
  }
}
