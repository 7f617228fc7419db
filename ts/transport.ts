// The client: QuicTransport keeps a pool of connections keyed by "host:port".

import { getHub } from './backend.js';
import type { Connection } from './connection.js';
import { Endpoint } from './endpoint.js';
import { fromEngine, invalidArgument, QuicwireError } from './errors.js';
import type { Hub } from './hub.js';
import {
  checkEncoding,
  checkInteger,
  checkKeys,
  checkObject,
  checkString,
  engineLimits,
  LIMIT_KEYS,
  sendBufferHigh,
  warnInsecure,
} from './options.js';
import type {
  ConnectOptions,
  PoolStats,
  ReceiveOptions,
  RequestOptions,
  SendOptions,
  TransportOptions,
} from './types.js';

const KEYS = [
  ...LIMIT_KEYS,
  'ca',
  'insecure',
  'encoding',
  'maxConnections',
  'idleTimeoutMs',
  'connectTimeoutMs',
  'sendBufferHigh',
  'transport',
  'fallbackDelayMs',
  'webTransport',
];

/** With `transport: 'auto'`, how long UDP has alone: a handshake on a working path is done
 *  well within it, and a blocked one costs users no more than that. */
const DEFAULT_FALLBACK_DELAY_MS = 250;

/** `webTransport` checked: only with `transport: 'webtransport'`, where the browser checks
 *  certificates (so neither `ca` nor `insecure` applies). */
function webTransportOptions(
  options: TransportOptions,
  used: boolean,
): { path: string; certificateHashes: string[] } | undefined {
  const given = options.webTransport;
  if (!used) {
    if (given !== undefined)
      throw invalidArgument("webTransport applies with transport: 'webtransport' only");
    return undefined;
  }
  if (options.ca !== undefined || options.insecure) {
    throw invalidArgument(
      "with transport: 'webtransport' the browser checks certificates: give webTransport.certificateHashes, not ca or insecure",
    );
  }
  if (given !== undefined) {
    checkObject('webTransport', given);
    checkKeys('webTransport', given, ['path', 'certificateHashes']);
  }
  const path = given?.path ?? '/';
  checkString('webTransport.path', path);
  if (!path.startsWith('/'))
    throw invalidArgument(`webTransport.path must start with '/', got ${JSON.stringify(path)}`);
  const hashes = given?.certificateHashes ?? [];
  if (!Array.isArray(hashes) || hashes.some((h) => typeof h !== 'string' || !/^[0-9a-fA-F]{64}$/.test(h))) {
    throw invalidArgument('webTransport.certificateHashes must be SHA-256 hashes in hex (64 digits each)');
  }
  return { path, certificateHashes: [...hashes] };
}

/** A connection, or its pool key "host:port" (connected on demand). */
export type Target = Connection | string;

export class QuicTransport extends Endpoint {
  readonly isServer = false;
  readonly sendBufferHigh: number;
  readonly #hub: Hub;
  readonly #handle: number;
  #closed = false;
  readonly #connections = new Set<Connection>();
  /** Connections of their own (`pooled: false`), and the tag of the next one. */
  readonly #own = new WeakSet<Connection>();
  #nextTag = 1;

  constructor(options: TransportOptions = {}) {
    checkObject('QuicTransport options', options);
    checkKeys('QuicTransport', options, KEYS);
    if (options.ca !== undefined) checkString('ca', options.ca);
    if (options.insecure !== undefined && typeof options.insecure !== 'boolean') {
      throw invalidArgument('insecure must be a boolean');
    }
    const encoding = checkEncoding('encoding', options.encoding ?? 'msgpack');
    const carrier = options.transport ?? 'udp';
    if (carrier !== 'udp' && carrier !== 'tcp' && carrier !== 'auto' && carrier !== 'webtransport') {
      throw invalidArgument(
        `transport must be 'udp', 'tcp', 'auto' or 'webtransport', got ${String(options.transport)}`,
      );
    }
    const webTransport = webTransportOptions(options, carrier === 'webtransport');
    const fallbackDelayMs = checkInteger(
      'fallbackDelayMs',
      options.fallbackDelayMs ?? DEFAULT_FALLBACK_DELAY_MS,
    );
    const transport = { ...engineLimits(options), sendBufferHigh: sendBufferHigh(options.sendBufferHigh) };
    // Only a transport that will exist warns.
    if (options.insecure) warnInsecure();
    super(options);
    this.sendBufferHigh = transport.sendBufferHigh;
    this.#hub = getHub();
    try {
      this.#handle = this.#hub.engine.createClient({
        transport,
        ...(options.ca !== undefined && { ca: options.ca }),
        insecure: options.insecure ?? false,
        encodings: [encoding],
        carrier,
        fallbackDelayMs,
        ...(webTransport && { webTransport }),
      });
    } catch (err) {
      throw fromEngine(err);
    }
    this.#hub.addOwner(this.#handle, this);
  }

  /** The pooled connection to host:port: reused when open, one handshake for concurrent
   *  calls. With `pooled: false`, a connection of its own: a new handshake each call, never
   *  handed to other calls or "host:port" targets (say, one per agent of a process, each
   *  with its own identity on the server), on this transport's socket. */
  async connect(host: string, port: number, options: ConnectOptions = {}): Promise<Connection> {
    this.#assertOpen();
    checkString('host', host);
    checkInteger('port', port, 0xffff_ffff);
    checkObject('connect options', options);
    checkKeys('connect', options, ['pooled']);
    const pooled = options.pooled ?? true;
    if (typeof pooled !== 'boolean') throw invalidArgument('pooled must be a boolean');
    const tag = pooled ? 0 : this.#nextTag++;
    let info: Awaited<ReturnType<Hub['engine']['connect']>>;
    try {
      info = await this.#hub.hold(this.#hub.engine.connect(this.#handle, host, port, tag));
    } catch (err) {
      throw fromEngine(err);
    }
    const conn = this.#hub.attach(this, info);
    if (!pooled) this.#own.add(conn);
    return conn;
  }

  /** Sends one message; resolves once the peer's application has it. */
  async send(target: Target, message: unknown, options?: SendOptions): Promise<void> {
    return (await this.#resolve(target)).send(message, options);
  }

  /** Sends messages in order on their lane; resolves once all were delivered. */
  async sendBatch(target: Target, messages: readonly unknown[], options?: SendOptions): Promise<void> {
    return (await this.#resolve(target)).sendBatch(messages, options);
  }

  /** A request on its own stream; resolves with the server handler's answer. */
  /** Moves this transport's connections to new local UDP ports, as after a network change
   *  (another Wi-Fi, a VPN coming up): QUIC migrates them once the server has validated the
   *  new path, and nothing sent or in flight is lost. A server also follows a client whose
   *  NAT gave it another port, with no call at all. */
  async rebind(): Promise<void> {
    this.#assertOpen();
    await this.#hub.engine.rebind(this.#handle);
  }

  /** `Connection.sendDatagram` on the pooled connection to `target`. */
  async sendDatagram(target: Target, datagram: Uint8Array): Promise<void> {
    return (await this.#resolve(target)).sendDatagram(datagram);
  }

  async request(target: Target, message: unknown, options?: RequestOptions): Promise<unknown> {
    return (await this.#resolve(target)).request(message, options);
  }

  /** The next message the server sent on this connection. */
  async receive(target: Target, options?: ReceiveOptions): Promise<unknown> {
    return (await this.#resolve(target)).receive(options);
  }

  /** Incoming messages of a connection, as an async iterator. */
  messages(connection: Connection): AsyncIterable<unknown> {
    return connection;
  }

  getPoolStats(): PoolStats {
    this.#assertOpen();
    return { ...this.#hub.engine.poolStats(this.#handle), answersFailed: this.answersFailed };
  }

  /** Closes one connection and drops it from the pool. */
  async disconnect(target: Target): Promise<void> {
    const conn = typeof target === 'string' ? this.#findByKey(target) : target;
    if (conn) this.closeConnection(conn);
  }

  /** Closes every connection; later calls reject with ERR_CONNECTION_CLOSED. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#hub.engine.closeClient(this.#handle);
    this.#hub.removeOwner(this.#handle);
  }

  connected(connection: Connection): void {
    this.#connections.add(connection);
  }

  disconnected(connection: Connection, reason: QuicwireError): void {
    this.#connections.delete(connection);
    this.disconnectHandler?.(connection, reason);
  }

  closeConnection(connection: Connection): void {
    this.#hub.engine.disconnect(connection.id);
  }

  #findByKey(key: string): Connection | undefined {
    for (const c of this.#connections) if (c.peer === key && c.isOpen && !this.#own.has(c)) return c;
    return undefined;
  }

  async #resolve(target: Target): Promise<Connection> {
    this.#assertOpen();
    if (typeof target !== 'string') {
      if (target === null || typeof target !== 'object' || typeof target.send !== 'function') {
        throw invalidArgument('target must be a Connection or a "host:port" string');
      }
      return target;
    }
    const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(target);
    if (!m) throw invalidArgument(`invalid address ${JSON.stringify(target)}: expected host:port`);
    return this.connect((m[1] ?? m[2]) as string, Number(m[3]));
  }

  #assertOpen(): void {
    if (this.#closed) throw new QuicwireError('ERR_CONNECTION_CLOSED', 'the transport is closed');
  }
}
