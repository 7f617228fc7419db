// The contract between the facade (the hub) and a backend: ts/engine-backend.ts, over the
// native or the wasm shell of the engine. A backend moves bytes; the facade owns encodings,
// promises and batching.

import type { QuicwireError } from './errors.js';
import type { ConnectionStats, DevCert, PoolStats, ServerStats } from './types.js';
import type { WebTransportClientOptions } from './webtransport.js';

export interface EngineTransportOptions {
  maxMessageSize?: number;
  maxConcurrentStreams?: number;
  idleTimeoutMs?: number;
  connectTimeoutMs?: number;
  requestTimeoutMs?: number;
  maxConnections?: number;
  keepAliveMs?: number;
  sendBufferHigh?: number;
  /** Index in CONGESTION_CONTROLLERS. */
  congestionControl?: number;
  /** 1: report TLS key log lines. */
  keyLog?: number;
  /** 1: report qlog records. */
  qlog?: number;
  /** 1: 0-RTT. */
  earlyData?: number;
}

/** What carries a client's QUIC packets (see `TransportOptions.transport`). */
export type Carrier = 'udp' | 'tcp' | 'auto' | 'webtransport';

export interface EngineClientOptions {
  transport: EngineTransportOptions;
  ca?: string;
  insecure?: boolean;
  encodings: string[];
  /** What carries its QUIC packets (default UDP; 'auto': UDP, and TCP too when UDP has
   *  not finished a handshake `fallbackDelayMs` in). */
  carrier?: Carrier;
  fallbackDelayMs?: number;
  /** With carrier 'webtransport': the session's path and the certificate hashes trusted. */
  webTransport?: WebTransportClientOptions;
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
  /** Also accept QUIC carried over TCP, on the same port number. */
  tcp?: boolean;
  /** Also accept WebTransport sessions (HTTP/3) on this path, from pages of these origins
   *  (none: any). */
  webTransport?: { path: string; origins: string[] };
  /** Serve on worker socket `index` of `group` (see `Engine.bindWorkers`) instead of
   *  binding `host:port`: this server is that worker. */
  worker?: WorkerSocket;
}

/** One worker's socket of a port shared by several (`Engine.bindWorkers`). */
export interface WorkerSocket {
  group: number;
  index: number;
}

export interface ConnectionInfo {
  id: number;
  encoding: string;
  peer: string;
  peerMaxMessageSize: number;
  /** The largest datagram this side may send (0: the peer takes none). */
  maxDatagramSize: number;
  carrier: 'udp' | 'tcp' | 'webtransport';
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
  error: QuicwireError;
}

/** The body of the event at `i` (see `Event` in ./layout.ts): `data[offset, offset + length)`,
 *  or where the offset is negative, `bodies[-offset - 1]`. */
export function eventBody({ data, meta, bodies }: EventBatch, i: number): Uint8Array {
  const off = meta[i + 5] as number;
  if (off < 0) return bodies[-off - 1] as Uint8Array;
  return data.subarray(off, off + (meta[i + 6] as number));
}

const text = new TextDecoder();

/** A CONNECTION event's connection (see `Event` in ./layout.ts: its body is
 *  "encoding peer carrier", c the largest datagram, d the peer's maxMessageSize). */
export function connectionInfo(batch: EventBatch, i: number): ConnectionInfo {
  const [encoding = 'msgpack', peer = '', carrier] = text.decode(eventBody(batch, i)).split(' ');
  return {
    id: batch.meta[i + 1] as number,
    encoding,
    peer,
    peerMaxMessageSize: batch.meta[i + 4] as number,
    maxDatagramSize: batch.meta[i + 3] as number,
    carrier: carrier === 'tcp' || carrier === 'webtransport' ? carrier : 'udp',
  };
}

export interface Engine {
  readonly name: 'native' | 'wasm';
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
  /** `tag` 0 (the default): the pooled connection to host:port; another: one of its own. */
  connect(client: number, host: string, port: number, tag?: number): Promise<ConnectionInfo>;
  disconnect(connection: number): void;
  poolStats(client: number): Omit<PoolStats, 'answersFailed'>;
  closeClient(client: number): Promise<void>;
  /** Moves a client's traffic to new local ports; its connections migrate. */
  rebind(client: number): Promise<void>;
  listen(options: EngineServerOptions): Promise<ServerInfo>;
  /** Binds `count` sockets on one UDP port for servers on as many worker threads, routed
   *  between by connection ID; `listen` with `worker` takes one each. Native on Linux only. */
  bindWorkers(host: string, port: number, count: number): { group: number; port: number };
  /** Closes the sockets of `group` that no server took. */
  releaseWorkers(group: number): void;
  serverStats(server: number): Omit<ServerStats, 'answersFailed'>;
  closeServer(server: number, graceful: boolean, timeoutMs: number): Promise<void>;
  generateDevCert(names: string[], validDays?: number): DevCert;
}

export type { ConnectionStats };
