// What a client transport and a server share: the handlers incoming traffic goes to.

import type {
  Connection,
  DatagramHandler,
  MessageHandler,
  Meter,
  Owner,
  RequestHandler,
} from './connection.js';
import { invalidArgument, type QuicwireError } from './errors.js';
import { checkKeys, checkObject } from './options.js';
import { platform } from './platform.js';
import { Tracing } from './tracing.js';
import type { LimitOptions, MessageHandlerOptions } from './types.js';

export type ErrorHandler = (error: QuicwireError, connection: Connection) => void;
export type DisconnectHandler = (connection: Connection, reason: QuicwireError) => void;

export abstract class Endpoint implements Owner {
  abstract readonly isServer: boolean;
  readonly #keyLog: LimitOptions['keyLog'];
  readonly #qlog: LimitOptions['qlog'];
  #messageHandler: MessageHandler | undefined;
  #borrowsMessages = false;
  #requestHandler: RequestHandler | undefined;
  #datagramHandler: DatagramHandler | undefined;
  #errorHandler: ErrorHandler | undefined;
  #disconnectHandler: DisconnectHandler | undefined;
  #warned = false;
  /** Answers to requests that could not be sent. */
  protected answersFailed = 0;
  /** Set while metrics watch this endpoint (ts/metrics.ts). */
  meter: Meter | undefined;

  /** Spans for its requests (the `tracing` option, ts/tracing.ts). */
  readonly tracing: Tracing | undefined;

  /** `options`: those of these names (`keyLog` and `qlog` checked by `engineLimits`). */
  constructor(options: Pick<LimitOptions, 'keyLog' | 'qlog' | 'tracing'>) {
    this.#keyLog = options.keyLog;
    this.#qlog = options.qlog;
    this.tracing = Tracing.of(options.tracing);
  }

  keyLogged(line: string): void {
    this.#keyLog?.(line);
  }

  qlogged(records: string, connectionId: number): void {
    this.#qlog?.(records, connectionId);
  }

  get messageHandler(): MessageHandler | undefined {
    return this.#messageHandler;
  }

  get borrowsMessages(): boolean {
    return this.#borrowsMessages;
  }

  get requestHandler(): RequestHandler | undefined {
    return this.#requestHandler;
  }

  get datagramHandler(): DatagramHandler | undefined {
    return this.#datagramHandler;
  }

  /** Handles incoming messages with a callback; without one they queue for `receive()`.
   *  With `borrow`, the bytes of a message (a raw one, or the byte strings in a msgpack
   *  one) may be views of a buffer quicwire reuses once the handler returns: large
   *  messages then cost no allocation each. Copy (`bytes.slice()`) what you keep. */
  onMessage(handler: MessageHandler, options: MessageHandlerOptions = {}): this {
    if (typeof handler !== 'function') throw invalidArgument('onMessage takes a function');
    checkObject('onMessage options', options);
    checkKeys('onMessage', options, ['borrow']);
    const borrow = options.borrow ?? false;
    if (typeof borrow !== 'boolean') throw invalidArgument('borrow must be a boolean');
    this.#messageHandler = handler;
    this.#borrowsMessages = borrow;
    return this;
  }

  /** Answers incoming requests: the return value (or promise) is the reply; a throw
   *  reaches the requester as ERR_REMOTE with the error's message. */
  onRequest(handler: RequestHandler): this {
    if (typeof handler !== 'function') throw invalidArgument('onRequest takes a function');
    this.#requestHandler = handler;
    return this;
  }

  /** Handles the peers' unreliable datagrams (`sendDatagram`); without a handler they are
   *  dropped (and still counted in the stats' `datagramsIn`). */
  onDatagram(handler: DatagramHandler): this {
    if (typeof handler !== 'function') throw invalidArgument('onDatagram takes a function');
    this.#datagramHandler = handler;
    return this;
  }

  /** Hears of what no promise can report: an answer to a peer's request that could not be
   *  sent (its connection closed, or the requester stopped waiting). Without a handler, the
   *  first such failure is a process warning; each one counts in the stats' `answersFailed`. */
  onError(handler: ErrorHandler): this {
    if (typeof handler !== 'function') throw invalidArgument('onError takes a function');
    this.#errorHandler = handler;
    return this;
  }

  /** Hears of each connection that closed, with why (ERR_CONNECTION_CLOSED; its cause
   *  has the underlying error). */
  onDisconnect(handler: DisconnectHandler): this {
    if (typeof handler !== 'function') throw invalidArgument('onDisconnect takes a function');
    this.#disconnectHandler = handler;
    return this;
  }

  protected get disconnectHandler(): DisconnectHandler | undefined {
    return this.#disconnectHandler;
  }

  answerFailed(connection: Connection, reason: QuicwireError): void {
    this.answersFailed++;
    this.meter?.failed(reason.code);
    if (this.#errorHandler) {
      this.#errorHandler(reason, connection);
    } else if (!this.#warned) {
      this.#warned = true;
      platform().warn(
        `quicwire: an answer to ${connection.peer} could not be sent (${reason.code}: ${reason.message}); set onError to hear of each`,
        'QUICWIRE_ANSWER_FAILED',
      );
    }
  }

  abstract connected(connection: Connection): void;
  abstract disconnected(connection: Connection, reason: QuicwireError): void;
  abstract closeConnection(connection: Connection): void;
}
