// One quicwire connection as JS sees it, on either side: a client's pooled connection or a
// server's peer. Sends resolve when the peer's application has the message (delivery ACKs),
// unconfirmed ones once the engine has taken them; the engine bounds what waits for ACKs
// (its send buffer, `sendBufferHigh`).

import { decode, encode } from './codec.js';
import type { ConnectionInfo } from './engine.js';
import { codeNumber, invalidArgument, QuicwireError } from './errors.js';
import { Fifo } from './fifo.js';
import type { Hub } from './hub.js';
import { Inbox } from './inbox.js';
import { Op, UNCONFIRMED } from './layout.js';
import type { Tracing } from './tracing.js';
import type {
  ArrivalInfo,
  Encoding,
  ReceiveOptions,
  RequestInfo,
  RequestOptions,
  SendOptions,
} from './types.js';

export type MessageHandler = (message: unknown, connection: Connection, info: ArrivalInfo) => void;
export type RequestHandler = (message: unknown, connection: Connection, info: RequestInfo) => unknown;
/** Gets a datagram's bytes to keep (a copy of its own). */
export type DatagramHandler = (datagram: Uint8Array, connection: Connection) => void;

/** The transport or server a connection belongs to. */
export interface Owner {
  readonly isServer: boolean;
  readonly messageHandler: MessageHandler | undefined;
  /** Set with the message handler: it takes bytes only valid until it returns. */
  readonly borrowsMessages: boolean;
  readonly requestHandler: RequestHandler | undefined;
  readonly datagramHandler: DatagramHandler | undefined;
  /** A TLS key log line of one of its connections (the `keyLog` option). */
  keyLogged(line: string): void;
  /** qlog records of one of its connections (the `qlog` option). */
  qlogged(records: string, connectionId: number): void;
  connected(connection: Connection): void;
  disconnected(connection: Connection, reason: QuicwireError): void;
  /** Closes this one connection. */
  closeConnection(connection: Connection): void;
  /** An answer to one of the peer's requests could not be sent. */
  answerFailed(connection: Connection, reason: QuicwireError): void;
  /** Hears of requests as they end, when metrics watch the owner (ts/metrics.ts). */
  readonly meter: Meter | undefined;
  /** Spans for its requests (the `tracing` option). */
  readonly tracing: Tracing | undefined;
}

/** What metrics hear of as it happens: each request this side made, and each it answered,
 *  with how long it took and how it ended (an error code, or none). */
export interface Meter {
  requested(seconds: number, code: string | undefined): void;
  answered(seconds: number, code: string | undefined): void;
  /** Something else failed with `code` (an answer that could not be sent). */
  failed(code: string): void;
}

/** Told once every message of a send or sendBatch is delivered (or not). */
export interface Delivery {
  remaining: number;
  resolve(): void;
  reject(err: QuicwireError): void;
}

/** A delivery nobody waits for: it stands in `sent` for an unconfirmed message (whose
 *  own delivery resolved when the engine took it), and goes with messages no one hears of. */
export const UNWATCHED: Delivery = { remaining: Number.POSITIVE_INFINITY, resolve() {}, reject() {} };

/** Our messages of one send priority, in order: each delivery queued in the hub until the
 *  engine takes it (pending), then until the peer ACKs it (sent). */
class Lane {
  /** The engine's sequence number of the newest message in `sent`. */
  queued = 0;
  readonly pending = new Fifo<Delivery>();
  readonly sent = new Fifo<Delivery>();
  /** The hub reports each queued message's fate here, in queue order. */
  readonly handedOff: { ok(): void; fail(err: QuicwireError): void };
  /** The same for an unconfirmed message: it counts as delivered once the engine has it. */
  readonly handedOffUnconfirmed: { ok(): void; fail(err: QuicwireError): void };

  constructor(
    readonly priority: number,
    onFail: (lane: Lane) => void,
  ) {
    this.handedOff = {
      ok: () => {
        this.queued += 1;
        this.sent.push(this.pending.shift() as Delivery);
      },
      fail: (err: QuicwireError) => {
        (this.pending.shift() as Delivery).reject(err);
        onFail(this);
      },
    };
    this.handedOffUnconfirmed = {
      ok: () => {
        this.queued += 1;
        this.sent.push(UNWATCHED);
        const d = this.pending.shift() as Delivery;
        d.remaining -= 1;
        if (d.remaining === 0) d.resolve();
      },
      fail: this.handedOff.fail,
    };
  }

  /** The peer has `delivered` of this lane's messages. */
  acked(delivered: number): void {
    // The oldest entry of `sent` has seq queued - (length - 1).
    for (let n = this.sent.length - (this.queued - delivered); n > 0; n--) {
      const d = this.sent.shift() as Delivery;
      d.remaining -= 1;
      if (d.remaining === 0) d.resolve();
    }
  }

  get isUnused(): boolean {
    return this.queued === 0 && this.pending.length === 0;
  }
}

/** What handlers are told of an arrival: shared, not made per message. */
const ON_TIME: ArrivalInfo = Object.freeze({ early: false });
const EARLY: ArrivalInfo = Object.freeze({ early: true });

/** A request being answered: what its handler is told (`info`), with an abort signal made
 *  when the handler first asks for it. */
class Answering implements RequestInfo {
  #controller: AbortController | undefined;
  #cancelled: QuicwireError | undefined;

  constructor(readonly early: boolean) {}

  get signal(): AbortSignal {
    if (!this.#controller) {
      this.#controller = new AbortController();
      if (this.#cancelled) this.#controller.abort(this.#cancelled);
    }
    return this.#controller.signal;
  }

  /** The requester stopped waiting, or the connection closed. */
  cancel(reason: QuicwireError): void {
    if (this.#cancelled) return;
    this.#cancelled = reason;
    this.#controller?.abort(reason);
  }
}

export class Connection implements AsyncIterable<unknown> {
  /** Engine connection id (unique in this process). */
  readonly id: number;
  /** The peer: `host:port` as dialed, or the client's address on a server. */
  readonly peer: string;
  /** Negotiated body encoding. */
  readonly encoding: Encoding;
  /** The largest body the peer accepts. */
  readonly peerMaxMessageSize: number;
  /** The largest datagram this side could send when the connection opened (0: the peer
   *  takes none); `stats` has it as of the last datagram sent, which follows the path's MTU. */
  readonly maxDatagramSize: number;
  /** What carries its packets: 'udp', or 'tcp' (a UDP block, see `transport`). */
  readonly carrier: 'udp' | 'tcp' | 'webtransport';

  readonly #hub: Hub;
  readonly #owner: Owner;
  #closed: QuicwireError | undefined;
  // Sending, with one small object per send (not per message), per lane (send priority).
  // The other lanes are made on first use (most connections have only the default one);
  // a lane the engine refused (one too many) is forgotten again.
  readonly #lane0 = new Lane(0, () => {});
  #lanes: Map<number, Lane> | undefined;
  // Receiving.
  /** Messages no handler took, for `receive`. */
  readonly #inbox: Inbox<unknown>;
  /** The peer's requests being answered, by handle. */
  readonly #answering = new Map<number, Answering>();

  constructor(hub: Hub, owner: Owner, info: ConnectionInfo) {
    this.#hub = hub;
    this.#owner = owner;
    this.id = info.id;
    this.encoding = info.encoding as Encoding;
    this.peer = info.peer;
    this.#inbox = new Inbox(info.peer);
    this.peerMaxMessageSize = info.peerMaxMessageSize;
    this.maxDatagramSize = info.maxDatagramSize;
    this.carrier = info.carrier;
  }

  /** Why the connection closed, or undefined while open. */
  get closeReason(): QuicwireError | undefined {
    return this.#closed;
  }

  get isOpen(): boolean {
    return this.#closed === undefined;
  }

  /** Sends one message; resolves once the peer's application has it (`unconfirmed`: once
   *  it is queued to go). */
  send(message: unknown, options?: SendOptions): Promise<void> {
    return this.sendBatch([message], options);
  }

  /** Sends messages in order on their lane; resolves once the peer's application has all
   *  of them. */
  sendBatch(messages: readonly unknown[], options?: SendOptions): Promise<void> {
    if (!Array.isArray(messages)) {
      return Promise.reject(invalidArgument('sendBatch takes an array of messages'));
    }
    let lane: Lane;
    let bodies: Uint8Array[];
    let op: number = Op.Message;
    let unconfirmed = false;
    try {
      lane = this.#lane(options?.priority ?? 0);
      if (options?.idempotent !== undefined) {
        if (typeof options.idempotent !== 'boolean') throw invalidArgument('idempotent must be a boolean');
        if (options.idempotent) op = Op.IdempotentMessage;
      }
      if (options?.unconfirmed !== undefined) {
        if (typeof options.unconfirmed !== 'boolean') throw invalidArgument('unconfirmed must be a boolean');
        unconfirmed = options.unconfirmed;
      }
      if (messages.length === 0) return Promise.resolve();
      this.#assertOpen();
      bodies = messages.map((m) => this.#encode(m));
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise((resolve, reject) => {
      const delivery: Delivery = { remaining: bodies.length, resolve, reject };
      for (const body of bodies) this.#enqueue(op, lane, body, delivery, unconfirmed);
    });
  }

  /** Sends one message already in the connection's encoding (copied now, on the default
   *  lane) and tells `delivery` what became of it: `send` without a promise, for code that
   *  forwards many messages (the bus). */
  post(body: Uint8Array, delivery: Delivery, unconfirmed = false): void {
    const why = this.#unsendable(body.length);
    if (why) delivery.reject(why);
    else this.#enqueue(Op.Message, this.#lane0, body, delivery, unconfirmed);
  }

  /** Sends an unreliable datagram (raw bytes, whatever the encoding): it may be lost, is
   *  never retransmitted and never waits behind a lost packet. Resolves once it is queued
   *  to go; while the connection cannot send, datagrams wait in a bounded queue that drops
   *  the oldest when full. Rejects with ERR_MESSAGE_TOO_LARGE past the path's limit. */
  sendDatagram(datagram: Uint8Array): Promise<void> {
    if (!(datagram instanceof Uint8Array)) {
      return Promise.reject(invalidArgument('sendDatagram takes a Uint8Array'));
    }
    try {
      this.#assertOpen();
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise((resolve, reject) => {
      this.#hub.queue(Op.Datagram, this.id, 0, datagram, 0, { ok: resolve, fail: reject });
    });
  }

  /** A datagram from the peer: to the handler, if there is one (else it is dropped). */
  datagramArrived(body: Uint8Array): void {
    this.#owner.datagramHandler?.(body.slice(), this);
  }

  /** Sends a request on its own stream; resolves with the peer handler's answer. */
  async request(message: unknown, options: RequestOptions = {}): Promise<unknown> {
    const timeoutMs = options.timeoutMs ?? 0;
    if (!Number.isInteger(timeoutMs) || timeoutMs < 0) {
      throw invalidArgument(`timeoutMs must be a non-negative integer, got ${String(timeoutMs)}`);
    }
    const priority = checkPriority(options.priority ?? 0);
    const idempotent = options.idempotent ?? false;
    if (typeof idempotent !== 'boolean') throw invalidArgument('idempotent must be a boolean');
    const signal = options.signal;
    if (signal !== undefined && !(signal instanceof AbortSignal)) {
      throw invalidArgument('signal must be an AbortSignal');
    }
    this.#assertOpen();
    const body = this.#encode(message);
    const how = { timeoutMs, priority, idempotent, signal, trace: undefined as Uint8Array | undefined };
    const meter = this.#owner.meter;
    const started = meter ? performance.now() : 0;
    const tracing = this.#owner.tracing;
    try {
      const answered = tracing
        ? tracing.request(this, (trace) => this.#hub.request(this, body, { ...how, trace }))
        : this.#hub.request(this, body, how);
      const answer = decode(await answered, this.encoding);
      meter?.requested((performance.now() - started) / 1000, undefined);
      return answer;
    } catch (err) {
      meter?.requested((performance.now() - started) / 1000, (err as QuicwireError).code ?? 'ERR_INTERNAL');
      throw err;
    }
  }

  /** The next message from the peer. */
  receive(options: ReceiveOptions = {}): Promise<unknown> {
    const timeoutMs = options.timeoutMs;
    if (timeoutMs !== undefined && (!Number.isInteger(timeoutMs) || timeoutMs < 0)) {
      return Promise.reject(
        invalidArgument(`timeoutMs must be a non-negative integer, got ${String(timeoutMs)}`),
      );
    }
    return this.#inbox.take(timeoutMs);
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
    const why = this.#unsendable(0);
    if (why) throw why;
  }

  /** Why a body of `length` bytes cannot be sent, if it cannot. */
  #unsendable(length: number): QuicwireError | undefined {
    if (this.#closed) {
      return new QuicwireError('ERR_CONNECTION_CLOSED', this.#closed.message, { cause: this.#closed });
    }
    if (length > this.peerMaxMessageSize) {
      return new QuicwireError(
        'ERR_MESSAGE_TOO_LARGE',
        `message of ${length} bytes exceeds ${this.peer}'s maxMessageSize of ${this.peerMaxMessageSize} bytes`,
      );
    }
    return undefined;
  }

  #encode(message: unknown): Uint8Array {
    const body = encode(message, this.encoding);
    const why = this.#unsendable(body.length);
    if (why) throw why;
    return body;
  }

  #lane(priority: number): Lane {
    if (priority === 0) return this.#lane0;
    this.#lanes ??= new Map();
    const lanes = this.#lanes;
    let lane = lanes.get(checkPriority(priority));
    if (!lane) {
      lane = new Lane(priority, (refused) => {
        if (refused.isUnused) lanes.delete(refused.priority);
      });
      lanes.set(priority, lane);
    }
    return lane;
  }

  #enqueue(op: number, lane: Lane, body: Uint8Array, delivery: Delivery, unconfirmed: boolean): void {
    lane.pending.push(delivery);
    if (unconfirmed)
      this.#hub.queue(op, this.id, 0, body, UNCONFIRMED, lane.handedOffUnconfirmed, lane.priority);
    else this.#hub.queue(op, this.id, 0, body, 0, lane.handedOff, lane.priority);
  }

  /** The engine says the peer has `delivered` of our messages on the lane of `priority`. */
  acked(priority: number, delivered: number): void {
    (priority === 0 ? this.#lane0 : this.#lanes?.get(priority))?.acked(delivered);
  }

  /** A message arrived from the peer; when `lent`, its bytes are only valid for now. */
  delivered(body: Uint8Array, lent: boolean, early: boolean): void {
    // Lent, but the handler that borrowed it was replaced since: a copy to keep.
    if (lent && !this.#owner.borrowsMessages) body = body.slice();
    let message: unknown;
    try {
      message = decode(body, this.encoding);
    } catch (err) {
      // Not readable: whoever receives next gets why.
      this.#inbox.fail(err as QuicwireError);
      return;
    }
    const handler = this.#owner.messageHandler;
    if (handler) handler(message, this, early ? EARLY : ON_TIME);
    else this.#inbox.put(message);
  }

  /** What became of an answer: the owner hears of one that could not be sent. */
  readonly #answered = {
    ok: () => {},
    fail: (err: QuicwireError) => this.#owner.answerFailed(this, err),
  };

  /** A request arrived from the peer: run the owner's handler and answer. */
  requested(handle: number, body: Uint8Array, early: boolean, trace: Uint8Array | undefined): void {
    const hub = this.#hub;
    const meter = this.#owner.meter;
    const started = meter ? performance.now() : 0;
    const fail = (
      code: 'ERR_REMOTE' | 'ERR_DECODE' | 'ERR_ENCODE' | 'ERR_MESSAGE_TOO_LARGE',
      message: string,
    ) => {
      this.#answering.delete(handle);
      meter?.answered((performance.now() - started) / 1000, code);
      hub.queue(
        Op.RespondError,
        this.id,
        handle,
        new TextEncoder().encode(message),
        codeNumber(code),
        this.#answered,
      );
    };
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
    const info = new Answering(early);
    this.#answering.set(handle, info);
    const tracing = this.#owner.tracing;
    Promise.resolve()
      .then(() =>
        tracing
          ? tracing.answer(this, trace, async () => handler(message, this, info))
          : handler(message, this, info),
      )
      .then(
        (reply) => {
          let answer: Uint8Array;
          try {
            answer = encode(reply, this.encoding);
          } catch (err) {
            fail('ERR_ENCODE', `the reply could not be encoded: ${(err as Error).message}`);
            return;
          }
          this.#answering.delete(handle);
          meter?.answered((performance.now() - started) / 1000, undefined);
          hub.queue(Op.Respond, this.id, handle, answer, 0, this.#answered);
        },
        (err: unknown) => fail('ERR_REMOTE', err instanceof Error ? err.message : String(err)),
      );
  }

  /** The requester of the request with this handle stopped waiting for its answer. */
  cancelled(handle: number): void {
    this.#answering
      .get(handle)
      ?.cancel(new QuicwireError('ERR_ABORTED', 'the requester stopped waiting for the answer'));
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
    for (const lane of [this.#lane0, ...(this.#lanes?.values() ?? [])]) {
      for (const d of lane.sent.drain()) d.reject(undelivered('message'));
    }
    this.#inbox.close(closed);
    for (const answering of this.#answering.values()) answering.cancel(closed);
    this.#answering.clear();
    this.#owner.disconnected(this, closed);
  }
}

/** A send or request priority: a 32-bit integer (higher first). */
function checkPriority(priority: number): number {
  if (!Number.isInteger(priority) || priority < -(2 ** 31) || priority >= 2 ** 31) {
    throw invalidArgument(`priority must be a 32-bit integer, got ${String(priority)}`);
  }
  return priority;
}
