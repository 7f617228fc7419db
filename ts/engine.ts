// The contract between the facade (the hub) and a backend: ts/engine-backend.ts, over the
// native or the wasm shell of the engine. A backend moves bytes; the facade owns encodings,
// promises and batching.

import type { ConnectionStats, DevCert, PoolStats, ServerStats } from './types.js';

export interface EngineTransportOptions {
  maxMessageSize?: number;
  maxConcurrentStreams?: number;
  idleTimeoutMs?: number;
  connectTimeoutMs?: number;
  requestTimeoutMs?: number;
  maxConnections?: number;
  keepAliveMs?: number;
}

export interface EngineClientOptions {
  transport: EngineTransportOptions;
  ca?: string;
  insecure?: boolean;
  encodings: string[];
}

export interface EngineServerOptions {
  transport: EngineTransportOptions;
  host: string;
  port: number;
  cert: string;
  key: string;
  encodings: string[];
  maxConnections?: number;
  maxConnectionsPerIp?: number;
  validateAddresses?: boolean;
}

export interface ConnectionInfo {
  id: number;
  encoding: string;
  peer: string;
  peerMaxMessageSize: number;
}

export interface ServerInfo {
  id: number;
  host: string;
  port: number;
}

export interface EventBatch {
  data: Uint8Array;
  meta: Float64Array;
  /** Large bodies, each in its own buffer (the native engine lends its own, uncopied), or
   *  when `lent`, views of one buffer the backend reuses. */
  bodies: Uint8Array[];
  /** The large bodies are only lent: valid until the hub asks for the next batch. Only
   *  messages to a client or server that borrows them (`startEvents`) are. */
  lent: boolean;
}

export interface WriteFailure {
  op: number;
  error: string;
}

/** Event kinds in `EventBatch.meta` (seven numbers each: kind, a, b, c, d, offset, length);
 *  the numbers are defined in quicwire-core (`batch::event`). */
export const Event = {
  /** a = connection, b = server (0: client side), d = peer maxMessageSize; data = "encoding peer". */
  Connection: 1,
  /** a = connection; data = body. */
  Message: 2,
  /** a = connection, b = request handle (unique on its connection); data = body. */
  Request: 3,
  /** a = connection, b = request id; data = body. */
  Response: 4,
  /** a = connection, b = request id, c = error code index; data = text. */
  RequestFailed: 5,
  /** a = connection, b = messages delivered so far. */
  Acked: 6,
  /** a = connection, c = error code index; data = reason. */
  Closed: 7,
  /** wasm engine only, handled by the wasm backend (the hub skips it): a = connection,
   *  b = channel stream, c = messages handed over so far, to acknowledge once dispatched. */
  Receipt: 8,
} as const;
export const EVENT_WORDS = 7;

/** The body of the event at `i`: `data[offset, offset + length)`, or where the offset is
 *  negative, `bodies[-offset - 1]`. */
export function eventBody({ data, meta, bodies }: EventBatch, i: number): Uint8Array {
  const off = meta[i + 5] as number;
  if (off < 0) return bodies[-off - 1] as Uint8Array;
  return data.subarray(off, off + (meta[i + 6] as number));
}

/** Ops of `Engine.write` (five numbers each: op, target, id, length, extra); defined in
 *  quicwire-core (`batch::op`). */
export const Op = {
  /** target = connection. */
  Message: 1,
  /** target = connection, id = request id, extra = timeout ms (0: default). */
  Request: 2,
  /** target = connection, id = request handle. */
  Respond: 3,
  /** target = connection, id = request handle, extra = error code index; body = text. */
  RespondError: 4,
} as const;
export const OP_WORDS = 5;

export interface Engine {
  readonly name: 'native' | 'wasm';
  /** Error codes, indexed by the numbers in events. */
  errorCodes(): string[];
  /** The body size from which a write goes to the engine at once, not through the batch. */
  largeBody(): number;
  /** A zeroed buffer whose large message bodies the engine sends without a copy (native;
   *  the wasm engine copies as from any buffer). */
  sendBuffer(size: number): Uint8Array;
  /** Registers the callback the engine calls when events are waiting, and the test of
   *  whether messages to a client or server (its handle) may be lent (`EventBatch.lent`). */
  startEvents(notify: () => void, borrows: (owner: number) => boolean): void;
  takeEvents(): EventBatch | null;
  /** Runs a batch of ops; returns the failed ones. With `coalesce`, what they put on the
   *  wire goes out after the current task, together with anything else written in it. */
  write(data: Uint8Array, ops: Float64Array, coalesce?: boolean): WriteFailure[];
  createClient(options: EngineClientOptions): number;
  connect(client: number, host: string, port: number): Promise<ConnectionInfo>;
  disconnect(connection: number): void;
  poolStats(client: number): Omit<PoolStats, 'answersFailed'>;
  closeClient(client: number): Promise<void>;
  listen(options: EngineServerOptions): Promise<ServerInfo>;
  serverStats(server: number): Omit<ServerStats, 'answersFailed'>;
  closeServer(server: number, graceful: boolean, timeoutMs: number): Promise<void>;
  generateDevCert(names: string[]): DevCert;
}

export type { ConnectionStats };
