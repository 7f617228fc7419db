// The public API, the same in every runtime; ts/index.ts (Node) and ts/browser.ts add the
// platform underneath it.

export { backend, type InitWasmOptions, initWasm } from './backend.js';
export {
  Agent,
  type AgentMessageHandler,
  type AgentOptions,
  type AgentRequestHandler,
  type AgentRequestOptions,
  type Answer,
  type AskOptions,
  type Called,
  type From,
  type Published,
  type QuorumOptions,
  type ReconnectOptions,
  type SendOptions as AgentSendOptions,
  type SubjectHandler,
  type SubscribeOptions,
  Subscription,
} from './bus/agent.js';
export { type BusOptions, type PresenceEvent, QuicBus } from './bus/bus.js';
export type { LeaseState } from './bus/leases.js';
export { ManualClock } from './clock.js';
export type { DatagramHandler, MessageHandler, RequestHandler } from './connection.js';
export { Connection } from './connection.js';
export type { DisconnectHandler, ErrorHandler } from './endpoint.js';
export { type ErrorCode, QuicwireError } from './errors.js';
export { type LinkOptions, MemoryNetwork, type MemoryNetworkOptions } from './memory.js';
export type { Clock, DatagramNetwork, DatagramSocket } from './platform.js';
export type { ConnectionHandler } from './server.js';
export { QuicServer } from './server.js';
export type { Target } from './transport.js';
export { QuicTransport } from './transport.js';
export type * from './types.js';

import { getHub } from './backend.js';
import { fromEngine, invalidArgument } from './errors.js';
import { checkInteger, checkKeys, checkObject } from './options.js';
import type { DevCert, DevCertOptions } from './types.js';

/** A zeroed buffer of `size` bytes to fill and send as a raw message: quicwire sends a
 *  message of 16 KiB and more in it without copying it, so the buffer must not change
 *  until that `send` resolved (the peer has it). Other buffers are copied when sent. */
export function allocSendBuffer(size: number): Uint8Array {
  checkInteger('size', size, 0xffff_ffff);
  try {
    return getHub().engine.sendBuffer(size);
  } catch (err) {
    throw fromEngine(err);
  }
}

/** A self-signed certificate (ECDSA P-256) for local development: use `cert` as the
 *  server's cert and the clients' `ca`, or give a browser its `hash` (with `validDays` of
 *  14 at most). */
export function generateDevCert(
  names: string[] = ['localhost', '127.0.0.1', '::1'],
  options: DevCertOptions = {},
): DevCert {
  if (!Array.isArray(names) || names.some((n) => typeof n !== 'string')) {
    throw invalidArgument('names must be an array of strings');
  }
  checkObject('generateDevCert options', options);
  checkKeys('generateDevCert', options, ['validDays']);
  const { validDays } = options;
  if (validDays !== undefined) checkInteger('validDays', validDays, 3650);
  try {
    const { cert, key, hash } = getHub().engine.generateDevCert(names, validDays);
    // Not enumerable: `{ ...dev }` spreads only cert and key, as into a server's options.
    return Object.defineProperty({ cert, key } as DevCert, 'hash', { value: hash, enumerable: false });
  } catch (err) {
    throw fromEngine(err);
  }
}
