// What a client transport and a server share: the handlers incoming traffic goes to.

import type { Connection, MessageHandler, Owner, RequestHandler } from './connection.js';
import { invalidArgument, type QuicwireError } from './errors.js';

export abstract class Endpoint implements Owner {
  abstract readonly isServer: boolean;
  abstract readonly sendBufferHigh: number;
  #messageHandler: MessageHandler | undefined;
  #requestHandler: RequestHandler | undefined;

  get messageHandler(): MessageHandler | undefined {
    return this.#messageHandler;
  }

  get requestHandler(): RequestHandler | undefined {
    return this.#requestHandler;
  }

  /** Handles incoming messages with a callback; without one they queue for `receive()`. */
  onMessage(handler: MessageHandler): this {
    if (typeof handler !== 'function') throw invalidArgument('onMessage takes a function');
    this.#messageHandler = handler;
    return this;
  }

  /** Answers incoming requests: the return value (or promise) is the reply; a throw
   *  reaches the requester as ERR_REMOTE with the error's message. */
  onRequest(handler: RequestHandler): this {
    if (typeof handler !== 'function') throw invalidArgument('onRequest takes a function');
    this.#requestHandler = handler;
    return this;
  }

  abstract connected(connection: Connection): void;
  abstract disconnected(connection: Connection, reason: QuicwireError): void;
  abstract closeConnection(connection: Connection): void;
}
