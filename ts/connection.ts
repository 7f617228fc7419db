// One quicwire connection as JS sees it, on either side: a client's pooled connection or a
// server's peer. Sends resolve when the peer's application has the message (delivery ACKs);
// unacknowledged bytes are bounded by high/low watermarks.

import { decode, encode } from './codec.js';
import { codeNumber, invalidArgument, QuicwireError } from './errors.js';
import type { Hub } from './hub.js';
import { Op } from './layout.js';
import type { Encoding, ReceiveOptions, RequestOptions } from './types.js';

export type MessageHandler = (message: unknown, connection: Connection) => void;
export type RequestHandler = (message: unknown, connection: Connection) => unknown;

/** The transport or server a connection belongs to. */
export interface Owner {
  readonly isServer: boolean;
  /** Unacknowledged bytes per connection before sends wait. */
  readonly sendBufferHigh: number;
  readonly messageHandler: MessageHandler | undefined;
  /** Set with the message handler: it takes bytes only valid until it returns. */
  readonly borrowsMessages: boolean;
  readonly requestHandler: RequestHandler | undefined;
  connected(connection: Connection): void;
  disconnected(connection: Connection, reason: QuicwireError): void;
  /** Closes this one connection. */
  closeConnection(connection: Connection): void;
  /** An answer to one of the peer's requests could not be sent. */
  answerFailed(connection: Connection, reason: QuicwireError): void;
}

/** Resolves once every message of a send or sendBatch is delivered. */
interface Delivery {
  remaining: number;
  resolve(): void;
  reject(err: QuicwireError): void;
}

interface Receiver {
  resolve(value: unknown): void;
  reject(err: QuicwireError): void;
  timer: ReturnType<typeof setTimeout> | undefined;
}

type Received = { value: unknown } | { error: QuicwireError };

export class Connection implements AsyncIterable<unknown> {
  /** Engine connection id (unique in this process). */
  readonly id: number;
  /** The peer: `host:port` as dialed, or the client's address on a server. */
  readonly peer: string;
  /** Negotiated body encoding. */
  readonly encoding: Encoding;
  /** The largest body the peer accepts. */
  readonly peerMaxMessageSize: number;

  readonly #hub: Hub;
  readonly #owner: Owner;
  #closed: QuicwireError | undefined;
  // Sending, per message and without a per-message object (the small-message hot path):
  // queued in the hub (#pend*, until the engine takes them), then handed to the engine
  // (#sent*, until the peer ACKs them). #queued is the seq of the newest #sent entry.
  #queued = 0;
  #unackedBytes = 0;
  #pendBytes: number[] = [];
  #pendDelivery: Delivery[] = [];
  #pendHead = 0;
  #sentBytes: number[] = [];
  #sentDelivery: Delivery[] = [];
  #sentHead = 0;
  /** The hub reports each queued message's fate here, in queue order. */
  readonly #handedOff = {
    ok: () => {
      const i = this.#pendHead++;
      this.#queued += 1;
      this.#sentBytes.push(this.#pendBytes[i] as number);
      this.#sentDelivery.push(this.#pendDelivery[i] as Delivery);
      this.#compactPending();
    },
    fail: (err: QuicwireError) => {
      const i = this.#pendHead++;
      this.#unackedBytes -= this.#pendBytes[i] as number;
      (this.#pendDelivery[i] as Delivery).reject(err);
      this.#compactPending();
    },
  };
  // Sends held back while the window is full.
  #waiting: { body: Uint8Array; delivery: Delivery }[] = [];
  #waitingBytes = 0;
  // Receiving.
  #inbox: Received[] = [];
  #inboxHead = 0;
  #receivers: Receiver[] = [];

  constructor(
    hub: Hub,
    owner: Owner,
    id: number,
    encoding: Encoding,
    peer: string,
    peerMaxMessageSize: number,
  ) {
    this.#hub = hub;
    this.#owner = owner;
    this.id = id;
    this.encoding = encoding;
    this.peer = peer;
    this.peerMaxMessageSize = peerMaxMessageSize;
  }

  /** Why the connection closed, or undefined while open. */
  get closeReason(): QuicwireError | undefined {
    return this.#closed;
  }

  get isOpen(): boolean {
    return this.#closed === undefined;
  }

  /** Sends one message; resolves once the peer's application has it. */
  send(message: unknown): Promise<void> {
    return this.sendBatch([message]);
  }

  /** Sends messages in order; resolves once the peer's application has all of them. */
  sendBatch(messages: readonly unknown[]): Promise<void> {
    if (!Array.isArray(messages)) {
      return Promise.reject(invalidArgument('sendBatch takes an array of messages'));
    }
    if (messages.length === 0) return Promise.resolve();
    let bodies: Uint8Array[];
    try {
      this.#assertOpen();
      bodies = messages.map((m) => this.#encode(m));
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise((resolve, reject) => {
      const delivery: Delivery = { remaining: bodies.length, resolve, reject };
      for (const body of bodies) this.#enqueue(body, delivery);
    });
  }

  /** Sends a request on its own stream; resolves with the peer handler's answer. */
  async request(message: unknown, options: RequestOptions = {}): Promise<unknown> {
    const timeoutMs = options.timeoutMs ?? 0;
    if (!Number.isInteger(timeoutMs) || timeoutMs < 0) {
      throw invalidArgument(`timeoutMs must be a non-negative integer, got ${String(timeoutMs)}`);
    }
    this.#assertOpen();
    const body = this.#encode(message);
    const answer = await this.#hub.request(this, body, timeoutMs);
    return decode(answer, this.encoding);
  }

  /** The next message from the peer. */
  receive(options: ReceiveOptions = {}): Promise<unknown> {
    const timeoutMs = options.timeoutMs;
    if (timeoutMs !== undefined && (!Number.isInteger(timeoutMs) || timeoutMs < 0)) {
      return Promise.reject(
        invalidArgument(`timeoutMs must be a non-negative integer, got ${String(timeoutMs)}`),
      );
    }
    const next = this.#takeReceived();
    if (next) return 'error' in next ? Promise.reject(next.error) : Promise.resolve(next.value);
    if (this.#closed) return Promise.reject(this.#closed);
    return new Promise((resolve, reject) => {
      const receiver: Receiver = { resolve, reject, timer: undefined };
      if (timeoutMs !== undefined) {
        receiver.timer = setTimeout(() => {
          this.#receivers = this.#receivers.filter((r) => r !== receiver);
          reject(new QuicwireError('ERR_TIMEOUT', `no message from ${this.peer} within ${timeoutMs} ms`));
        }, timeoutMs);
        receiver.timer.unref?.();
      }
      this.#receivers.push(receiver);
    });
  }

  /** Incoming messages until the connection closes. */
  async *[Symbol.asyncIterator](): AsyncIterator<unknown> {
    while (true) {
      try {
        yield await this.receive();
      } catch (err) {
        if (err instanceof QuicwireError && err.code === 'ERR_CONNECTION_CLOSED') return;
        throw err;
      }
    }
  }

  /** Closes this connection (pending sends and requests reject). */
  close(): void {
    this.#owner.closeConnection(this);
  }

  #assertOpen(): void {
    if (this.#closed) {
      throw new QuicwireError('ERR_CONNECTION_CLOSED', this.#closed.message, { cause: this.#closed });
    }
  }

  #encode(message: unknown): Uint8Array {
    const body = encode(message, this.encoding);
    if (body.length > this.peerMaxMessageSize) {
      throw new QuicwireError(
        'ERR_MESSAGE_TOO_LARGE',
        `message of ${body.length} bytes exceeds ${this.peer}'s maxMessageSize of ${this.peerMaxMessageSize} bytes`,
      );
    }
    return body;
  }

  #enqueue(body: Uint8Array, delivery: Delivery): void {
    const high = this.#owner.sendBufferHigh;
    const fits = this.#unackedBytes === 0 || this.#unackedBytes + body.length <= high;
    if (this.#waiting.length > 0 || !fits) {
      if (this.#waitingBytes + body.length > high) {
        delivery.reject(
          new QuicwireError(
            'ERR_FLOW_CONTROL_PAUSED',
            `${this.peer} is not reading fast enough: ${this.#unackedBytes + this.#waitingBytes} bytes already wait (sendBufferHigh ${high})`,
          ),
        );
        return;
      }
      // A raw body is the caller's buffer, which it may reuse once send returns.
      this.#waiting.push({ body: this.encoding === 'raw' ? body.slice() : body, delivery });
      this.#waitingBytes += body.length;
      return;
    }
    this.#sendNow(body, delivery);
  }

  #sendNow(body: Uint8Array, delivery: Delivery): void {
    this.#unackedBytes += body.length;
    this.#pendBytes.push(body.length);
    this.#pendDelivery.push(delivery);
    this.#hub.queue(Op.Message, this.id, 0, body, 0, this.#handedOff);
  }

  #compactPending(): void {
    if (this.#pendHead === this.#pendBytes.length) {
      this.#pendBytes.length = 0;
      this.#pendDelivery.length = 0;
      this.#pendHead = 0;
    }
  }

  /** The engine says the peer has `delivered` of our messages. */
  acked(delivered: number): void {
    const bytes = this.#sentBytes;
    const deliveries = this.#sentDelivery;
    let head = this.#sentHead;
    // The entry at index i has seq #queued - (length - 1 - i).
    const end = Math.min(bytes.length, bytes.length - (this.#queued - delivered));
    while (head < end) {
      this.#unackedBytes -= bytes[head] as number;
      const d = deliveries[head] as Delivery;
      d.remaining -= 1;
      if (d.remaining === 0) d.resolve();
      head++;
    }
    if (head === bytes.length) {
      bytes.length = 0;
      deliveries.length = 0;
      head = 0;
    } else if (head > 1024 && head * 2 > bytes.length) {
      this.#sentBytes = bytes.slice(head);
      this.#sentDelivery = deliveries.slice(head);
      head = 0;
    }
    this.#sentHead = head;
    if (this.#waiting.length > 0) this.#releaseWaiting();
  }

  #releaseWaiting(): void {
    const high = this.#owner.sendBufferHigh;
    while (this.#waiting.length > 0) {
      const next = this.#waiting[0] as { body: Uint8Array; delivery: Delivery };
      if (this.#unackedBytes > 0 && this.#unackedBytes + next.body.length > high) return;
      this.#waiting.shift();
      this.#waitingBytes -= next.body.length;
      this.#sendNow(next.body, next.delivery);
    }
  }

  /** A message arrived from the peer; when `lent`, its bytes are only valid for now. */
  delivered(body: Uint8Array, lent: boolean): void {
    // Lent, but the handler that borrowed it was replaced since: a copy to keep.
    if (lent && !this.#owner.borrowsMessages) body = body.slice();
    let item: Received;
    try {
      item = { value: decode(body, this.encoding) };
    } catch (err) {
      item = { error: err as QuicwireError };
    }
    const handler = this.#owner.messageHandler;
    if (handler && 'value' in item) {
      handler(item.value, this);
      return;
    }
    const receiver = this.#receivers.shift();
    if (receiver) {
      if (receiver.timer) clearTimeout(receiver.timer);
      if ('error' in item) receiver.reject(item.error);
      else receiver.resolve(item.value);
    } else {
      this.#inbox.push(item);
    }
  }

  #takeReceived(): Received | undefined {
    if (this.#inboxHead >= this.#inbox.length) return undefined;
    const item = this.#inbox[this.#inboxHead++];
    if (this.#inboxHead > 1024 && this.#inboxHead * 2 > this.#inbox.length) {
      this.#inbox = this.#inbox.slice(this.#inboxHead);
      this.#inboxHead = 0;
    }
    return item;
  }

  /** What became of an answer: the owner hears of one that could not be sent. */
  readonly #answered = {
    ok: () => {},
    fail: (err: QuicwireError) => this.#owner.answerFailed(this, err),
  };

  /** A request arrived from the peer: run the owner's handler and answer. */
  requested(handle: number, body: Uint8Array): void {
    const hub = this.#hub;
    const fail = (
      code: 'ERR_REMOTE' | 'ERR_DECODE' | 'ERR_ENCODE' | 'ERR_MESSAGE_TOO_LARGE',
      message: string,
    ) =>
      hub.queue(
        Op.RespondError,
        this.id,
        handle,
        new TextEncoder().encode(message),
        codeNumber(code),
        this.#answered,
      );
    let message: unknown;
    try {
      message = decode(body, this.encoding);
    } catch (err) {
      fail('ERR_DECODE', (err as Error).message);
      return;
    }
    const handler = this.#owner.requestHandler;
    if (!handler) {
      fail('ERR_REMOTE', 'the peer has no request handler (onRequest)');
      return;
    }
    Promise.resolve()
      .then(() => handler(message, this))
      .then(
        (reply) => {
          let answer: Uint8Array;
          try {
            answer = encode(reply, this.encoding);
          } catch (err) {
            fail('ERR_ENCODE', `the reply could not be encoded: ${(err as Error).message}`);
            return;
          }
          hub.queue(Op.Respond, this.id, handle, answer, 0, this.#answered);
        },
        (err: unknown) => fail('ERR_REMOTE', err instanceof Error ? err.message : String(err)),
      );
  }

  /** The connection is gone: everything pending learns it. */
  closedBy(reason: QuicwireError): void {
    if (this.#closed) return;
    const closed =
      reason.code === 'ERR_CONNECTION_CLOSED'
        ? reason
        : new QuicwireError('ERR_CONNECTION_CLOSED', reason.message, { cause: reason });
    this.#closed = closed;
    const undelivered = (what: string) =>
      new QuicwireError('ERR_CONNECTION_CLOSED', `${closed.message}; ${what} may not have been delivered`, {
        cause: reason,
      });
    for (let i = this.#sentHead; i < this.#sentDelivery.length; i++) {
      (this.#sentDelivery[i] as Delivery).reject(undelivered('message'));
    }
    this.#sentBytes = [];
    this.#sentDelivery = [];
    this.#sentHead = 0;
    for (const w of this.#waiting) w.delivery.reject(undelivered('message'));
    this.#waiting = [];
    for (const r of this.#receivers) {
      if (r.timer) clearTimeout(r.timer);
      r.reject(closed);
    }
    this.#receivers = [];
    this.#owner.disconnected(this, closed);
  }
}
