// The server: QuicServer accepts connections and hands their messages and requests to
// handlers; each client appears as a Connection (a "peer") that can send and request too.

import { getHub } from './backend.js';
import type { Connection } from './connection.js';
import { Endpoint } from './endpoint.js';
import type { EngineServerOptions, WorkerSocket } from './engine.js';
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
} from './options.js';
import type { CloseOptions, ServerOptions, ServerStats } from './types.js';

/** `QuicServer.listen`'s options. */
export const SERVER_KEYS = [
  ...LIMIT_KEYS,
  'host',
  'port',
  'cert',
  'key',
  'encodings',
  'sendBufferHigh',
  'maxConnections',
  'maxConnectionsPerIp',
  'validateAddresses',
  'tcp',
  'webTransport',
];

export type ConnectionHandler = (peer: Connection) => void;

/** The key of a worker's socket in `QuicServer.listen`'s options: a server on a worker
 *  thread (ts/server-worker.ts) serves on the socket bound for it instead of binding. */
export const WORKER_SOCKET: unique symbol = Symbol('quicwire.workerSocket');

export class QuicServer extends Endpoint {
  readonly isServer = true;
  readonly sendBufferHigh: number;
  /** The bound address and port (the real one when `port: 0` was asked). */
  readonly host: string;
  readonly port: number;
  readonly #hub: Hub;
  readonly #handle: number;
  #closed = false;
  #connectionHandler: ConnectionHandler | undefined;
  readonly #peers = new Set<Connection>();

  private constructor(
    hub: Hub,
    handle: number,
    host: string,
    port: number,
    high: number,
    options: ServerOptions,
  ) {
    super(options);
    this.#hub = hub;
    this.#handle = handle;
    this.host = host;
    this.port = port;
    this.sendBufferHigh = high;
  }

  /** Binds a UDP port and starts accepting QUIC connections. */
  static async listen(options: ServerOptions & { [WORKER_SOCKET]?: WorkerSocket }): Promise<QuicServer> {
    checkObject('QuicServer.listen options', options);
    checkKeys('QuicServer.listen', options, SERVER_KEYS);
    const host = checkString('host', options.host ?? '127.0.0.1');
    const port = checkInteger('port', options.port ?? 0, 0xffff_ffff);
    const cert = checkString('cert', options.cert);
    const key = checkString('key', options.key);
    const encodings = options.encodings ?? ['msgpack', 'json', 'raw'];
    if (!Array.isArray(encodings) || encodings.length === 0) {
      throw invalidArgument('encodings must be a non-empty array');
    }
    for (const [i, e] of encodings.entries()) checkEncoding(`encodings[${i}]`, e);
    const high = sendBufferHigh(options.sendBufferHigh);
    const admission: Pick<
      EngineServerOptions,
      'maxConnections' | 'maxConnectionsPerIp' | 'validateAddresses'
    > = {};
    if (options.maxConnections !== undefined)
      admission.maxConnections = checkInteger('maxConnections', options.maxConnections, 0xffff_ffff);
    if (options.maxConnectionsPerIp !== undefined)
      admission.maxConnectionsPerIp = checkInteger(
        'maxConnectionsPerIp',
        options.maxConnectionsPerIp,
        0xffff_ffff,
      );
    if (options.validateAddresses !== undefined) {
      if (typeof options.validateAddresses !== 'boolean')
        throw invalidArgument('validateAddresses must be a boolean');
      admission.validateAddresses = options.validateAddresses;
    }
    if (options.tcp !== undefined && typeof options.tcp !== 'boolean')
      throw invalidArgument('tcp must be a boolean');
    let webTransport: EngineServerOptions['webTransport'];
    if (options.webTransport !== undefined) {
      checkObject('webTransport', options.webTransport);
      checkKeys('webTransport', options.webTransport, ['path', 'origins']);
      const { path = '/', origins = [] } = options.webTransport;
      if (!Array.isArray(origins)) throw invalidArgument('webTransport.origins must be an array of strings');
      webTransport = {
        path: checkString('webTransport.path', path),
        origins: origins.map((o, i) => checkString(`webTransport.origins[${i}]`, o)),
      };
    }
    const hub = getHub();
    let info: Awaited<ReturnType<Hub['engine']['listen']>>;
    try {
      info = await hub.engine.listen({
        transport: { ...engineLimits(options), sendBufferHigh: high },
        host,
        port,
        cert,
        key,
        encodings,
        ...admission,
        tcp: options.tcp ?? false,
        ...(webTransport !== undefined && { webTransport }),
        ...(options[WORKER_SOCKET] && { worker: options[WORKER_SOCKET] }),
      });
    } catch (err) {
      throw fromEngine(err);
    }
    const server = new QuicServer(hub, info.id, info.host, info.port, high, options);
    hub.addOwner(info.id, server);
    return server;
  }

  onConnection(handler: ConnectionHandler): this {
    if (typeof handler !== 'function') throw invalidArgument('onConnection takes a function');
    this.#connectionHandler = handler;
    return this;
  }

  /** Connected clients. */
  peers(): Connection[] {
    return [...this.#peers];
  }

  /** Sends `message` to every connected client; resolves when all have it. */
  async broadcast(message: unknown): Promise<void> {
    this.#assertOpen();
    await Promise.all(this.peers().map((p) => p.send(message)));
  }

  stats(): ServerStats {
    this.#assertOpen();
    return { ...this.#hub.engine.serverStats(this.#handle), answersFailed: this.answersFailed };
  }

  /** Stops accepting. Graceful (default): GOAWAY, open requests may finish (up to timeoutMs). */
  async close(options: CloseOptions = {}): Promise<void> {
    checkObject('close options', options);
    checkKeys('close', options, ['graceful', 'timeoutMs']);
    const timeoutMs = checkInteger('timeoutMs', options.timeoutMs ?? 5000);
    if (this.#closed) return;
    this.#closed = true;
    // Flush answers already queued so graceful close can deliver them.
    this.#hub.flush();
    await this.#hub.engine.closeServer(this.#handle, options.graceful ?? true, timeoutMs);
    this.#hub.removeOwner(this.#handle);
  }

  connected(peer: Connection): void {
    this.#peers.add(peer);
    this.#connectionHandler?.(peer);
  }

  disconnected(peer: Connection, reason: QuicwireError): void {
    this.#peers.delete(peer);
    this.disconnectHandler?.(peer, reason);
  }

  closeConnection(peer: Connection): void {
    this.#hub.engine.disconnect(peer.id);
  }

  #assertOpen(): void {
    if (this.#closed) throw new QuicwireError('ERR_CONNECTION_CLOSED', 'the server is closed');
  }
}
