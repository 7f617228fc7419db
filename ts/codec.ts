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

export function encode(value: unknown, encoding: Encoding): Uint8Array {
  if (encoding === 'raw') {
    if (value instanceof Uint8Array) return value;
    throw encodeError('raw', 'the raw encoding sends Uint8Array (or Buffer) messages only');
  }
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
    return packr.unpack(bytes);
  } catch (err) {
    throw new QuicwireError('ERR_DECODE', `cannot decode ${encoding} message: ${String(err)}`, {
      cause: err,
    });
  }
}
