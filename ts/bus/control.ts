// Control requests (agent to bus): rare, so MessagePack objects, checked on arrival.

import { decode, encode } from '../codec.js';
import { QuicwireError } from '../errors.js';
import { checkSubject } from './subjects.js';

export interface Subscription {
  sid: number;
  subject: string;
  /** The queue group, or '' for none. */
  queue: string;
}

export type Control =
  | { op: 'hello'; name: string; instance: string; watch: boolean; subscriptions: Subscription[] }
  | ({ op: 'subscribe' } & Subscription)
  | { op: 'unsubscribe'; sid: number }
  | { op: 'agents' }
  | { op: 'watch'; on: boolean }
  | { op: 'lease'; resource: string; ttlMs: number }
  | { op: 'release'; resource: string };

export function encodeControl(value: unknown): Uint8Array {
  return encode(value, 'msgpack');
}

/** A control request as sent; anything else is ERR_PROTOCOL. */
export function decodeControl(bytes: Uint8Array): Control {
  const c = decode(bytes, 'msgpack') as Record<string, unknown>;
  const bad = (why: string) => new QuicwireError('ERR_PROTOCOL', `bad bus control request: ${why}`);
  if (c === null || typeof c !== 'object') throw bad('not an object');
  const str = (k: string) => {
    if (typeof c[k] !== 'string' || (c[k] as string).length === 0) throw bad(`${k} must be a string`);
    return c[k] as string;
  };
  const int = (v: unknown, k: string) => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xffff_ffff)
      throw bad(`${k} must be a u32`);
    return v;
  };
  const sub = (s: unknown): Subscription => {
    const o = s as Record<string, unknown>;
    if (o === null || typeof o !== 'object') throw bad('a subscription must be an object');
    const queue = o.queue ?? '';
    if (typeof queue !== 'string') throw bad('queue must be a string');
    return { sid: int(o.sid, 'sid'), subject: checkSubject('subject', o.subject, true), queue };
  };
  switch (c.op) {
    case 'hello': {
      if (!Array.isArray(c.subscriptions)) throw bad('subscriptions must be an array');
      return {
        op: 'hello',
        name: str('name'),
        instance: str('instance'),
        watch: c.watch === true,
        subscriptions: c.subscriptions.map(sub),
      };
    }
    case 'subscribe':
      return { op: 'subscribe', ...sub(c) };
    case 'unsubscribe':
      return { op: 'unsubscribe', sid: int(c.sid, 'sid') };
    case 'agents':
      return { op: 'agents' };
    case 'watch':
      return { op: 'watch', on: c.on === true };
    case 'lease':
      return { op: 'lease', resource: str('resource'), ttlMs: int(c.ttlMs, 'ttlMs') };
    case 'release':
      return { op: 'release', resource: str('resource') };
    default:
      throw bad(`unknown op ${JSON.stringify(c.op)}`);
  }
}

/** A random id: an agent's instance (kept across its reconnects), a bus node's. */
export function randomId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}
