// An agent: one connection to a bus, under a name, with subscriptions. It reconnects on
// its own (backoff with jitter), says its name and subscriptions again, and holds what is
// sent meanwhile in a bounded buffer.

import { decode, encode } from '../codec.js';
import { type Connection, type Delivery, UNWATCHED } from '../connection.js';
import { invalidArgument, QuicwireError } from '../errors.js';
import { aborted } from '../hub.js';
import { Inbox } from '../inbox.js';
import { checkInteger, checkKeys, checkObject, checkString, LIMIT_KEYS } from '../options.js';
import { QuicTransport } from '../transport.js';
import type { RequestInfo, TransportOptions } from '../types.js';
import type { PresenceEvent } from './bus.js';
import { type Control, encodeControl, randomId, type Subscription as Wire } from './control.js';
import { FrameReader, FrameWriter, Kind, OK, readAnswer, statusCode, statusError } from './frames.js';
import type { LeaseState } from './leases.js';
import { checkSubject } from './subjects.js';

export interface ReconnectOptions {
  /** The first retry's delay (default 100 ms); each next one doubles, up to `maxDelayMs`. */
  initialDelayMs?: number;
  /** The longest delay between retries (default 5000 ms). */
  maxDelayMs?: number;
  /** Retries before the agent gives up and closes (default: no limit). */
  maxAttempts?: number;
}

export interface AgentOptions
  extends Omit<TransportOptions, 'encoding' | 'maxConnections' | 'idleTimeoutMs'> {
  /** The agent's name on the bus: unique (ERR_NAME_TAKEN if another agent has it). */
  name: string;
  /** Reconnecting after the connection drops (default on); `false` closes the agent. */
  reconnect?: ReconnectOptions | false;
  /** Messages held while reconnecting (default 1000); past it sends reject with
   *  ERR_FLOW_CONTROL_PAUSED. */
  bufferLimit?: number;
}

export interface SendOptions {
  /** Aborting rejects with ERR_ABORTED: a message still held while reconnecting is
   *  dropped; one on its way may still arrive. */
  signal?: AbortSignal;
  /** Resolve once queued to go, as a NATS publish does (default false): no word comes
   *  back of who got it, or that no one did (no ERR_NO_RESPONDERS), and `publish` and
   *  `broadcast` resolve with undefined. The bus and the receivers acknowledge it late, in
   *  fewer packets. It still arrives once, in order with the agent's other sends, unless
   *  a connection on its way closes first. */
  unconfirmed?: boolean;
}

export interface AgentRequestOptions {
  /** Reject with ERR_TIMEOUT when no answer came within this many ms (default: the
   *  `requestTimeoutMs` option, 30000). Time spent reconnecting counts. */
  timeoutMs?: number;
  /** Aborting rejects with ERR_ABORTED at once and resets the request's stream. */
  signal?: AbortSignal;
}

export interface AskOptions extends AgentRequestOptions {
  /** Within each queue group, the member this key belongs to answers (consistent
   *  hashing: the same key reaches the same member while the group stays the same). */
  key?: string;
}

export interface QuorumOptions extends AgentRequestOptions {
  /** How many answers make a quorum. */
  threshold: number;
}

/** One agent's answer to an ask: its value, or its error. */
export type Answer = { from: string; value: unknown } | { from: string; error: QuicwireError };

/** Where a message came from. */
export interface From {
  /** The sending agent's name. */
  from: string;
}

/** A published message's subject and sender. */
export interface Published extends From {
  subject: string;
}

/** Where a request came from, and whether its asker still waits. */
export interface Called extends From {
  /** Aborted when the asker stops waiting (it aborted, or its timeout passed), or the
   *  bus connection closes: the work may stop. */
  readonly signal: AbortSignal;
}

export type AgentMessageHandler = (message: unknown, info: From) => void;
export type AgentRequestHandler = (message: unknown, info: Called) => unknown;
/** Gets what is published on a subscribed subject; for an ask, its return value (or
 *  promise) is the answer, and `info.signal` says when the asker stops waiting. */
export type SubjectHandler = (
  message: unknown,
  info: Published & { readonly signal?: AbortSignal },
) => unknown;

export interface SubscribeOptions {
  /** A queue group: each message or ask goes to one member of it. */
  queue?: string;
  /** Aborting before the bus confirmed rejects with ERR_ABORTED and ends the
   *  subscription. */
  signal?: AbortSignal;
}

interface Sub extends Wire {
  handler: SubjectHandler;
}

const KEYS = [
  ...LIMIT_KEYS,
  'name',
  'reconnect',
  'bufferLimit',
  'ca',
  'insecure',
  'connectTimeoutMs',
  'sendBufferHigh',
  'transport',
  'fallbackDelayMs',
];

/** What an answer from the bus may take beyond the agent's own timeout, so the bus's
 *  ERR_TIMEOUT (which names the agent) arrives before the local one. */
const MARGIN_MS = 1000;
const DAY_MS = 86_400_000;

type State = 'connected' | 'reconnecting' | 'closed';

export class Agent {
  readonly name: string;
  readonly #shared: Shared;
  readonly #host: string;
  readonly #port: number;
  readonly #instance = randomId();
  readonly #reconnect: Required<ReconnectOptions> | false;
  readonly #bufferLimit: number;
  readonly #requestTimeoutMs: number;
  readonly #connectTimeoutMs: number;
  #conn: Connection | undefined;
  #state: State = 'reconnecting';
  #closeReason: QuicwireError | undefined;
  // Sends and publishes: waiting for their ACK, and held while reconnecting.
  #seq = 0;
  readonly #pending = new Map<number, Outgoing>();
  /** Held while reconnecting: `out` undefined for an unconfirmed one. */
  readonly #held: { out: Outgoing | undefined; frame: Uint8Array }[] = [];
  /** Requests waiting for the connection. */
  readonly #waiters = new Set<{ resolve(c: Connection): void; reject(e: QuicwireError): void }>();
  // What the bus is told again after a reconnect.
  #nextSid = 1;
  readonly #subs = new Map<number, Sub>();
  #presenceHandler: ((event: PresenceEvent) => void) | undefined;
  #messageHandler: AgentMessageHandler | undefined;
  #requestHandler: AgentRequestHandler | undefined;
  /** Messages no handler took, for `receive`. */
  readonly #inbox = new Inbox<{ message: unknown; from: string }>('other agents');
  #stateHandler: ((state: State, reason?: QuicwireError) => void) | undefined;
  #errorHandler: ((error: QuicwireError) => void) | undefined;

  private constructor(shared: Shared, host: string, port: number, options: AgentOptions) {
    this.#shared = shared;
    this.#host = host;
    this.#port = port;
    this.name = options.name;
    const r = options.reconnect ?? {};
    if (r === false) {
      this.#reconnect = false;
    } else {
      checkObject('reconnect', r);
      checkKeys('reconnect', r, ['initialDelayMs', 'maxDelayMs', 'maxAttempts']);
      this.#reconnect = {
        initialDelayMs: checkInteger('initialDelayMs', r.initialDelayMs ?? 100),
        maxDelayMs: checkInteger('maxDelayMs', r.maxDelayMs ?? 5000),
        maxAttempts:
          r.maxAttempts === undefined ? Number.POSITIVE_INFINITY : checkInteger('maxAttempts', r.maxAttempts),
      };
    }
    this.#bufferLimit = checkInteger('bufferLimit', options.bufferLimit ?? 1000);
    this.#requestTimeoutMs = options.requestTimeoutMs ?? 30_000;
    this.#connectTimeoutMs = options.connectTimeoutMs ?? 5000;
  }

  /** What the shared transport hands this agent of its connection. */
  readonly #link: AgentLink = {
    message: (body) => this.#message(body),
    called: (body, request) => this.#called(body, request),
    dropped: (conn, reason) => this.#dropped(conn, reason),
    failed: (err) => this.#errorHandler?.(err),
  };

  /** Connects to the bus at `target` ("host:port") and registers `options.name`. */
  static async connect(target: string, options: AgentOptions): Promise<Agent> {
    checkObject('Agent.connect options', options);
    checkKeys('Agent.connect', options, KEYS);
    checkName('name', options.name);
    const [host, port] = parseTarget(target);
    const { name: _name, reconnect: _r, bufferLimit: _b, ...transportOptions } = options;
    const shared = Shared.take(transportOptions);
    let agent: Agent;
    try {
      agent = new Agent(shared, host, port, options);
      await agent.#attach(await agent.#dial());
    } catch (err) {
      shared.release();
      throw err;
    }
    return agent;
  }

  /** A connection of this agent's own to the bus, on the shared transport. */
  async #dial(): Promise<Connection> {
    const conn = await this.#shared.transport.connect(this.#host, this.#port, { pooled: false });
    this.#shared.agents.set(conn, this.#link);
    return conn;
  }

  /** 'connected', 'reconnecting' (sends are held), or 'closed'. */
  get state(): State {
    return this.#state;
  }

  /** Hears of each change of `state` (with why, when the connection dropped or closed). */
  onStateChange(handler: (state: State, reason?: QuicwireError) => void): this {
    if (typeof handler !== 'function') throw invalidArgument('onStateChange takes a function');
    this.#stateHandler = handler;
    return this;
  }

  /** Hears of answers this agent's handlers gave that could not be sent: the bus stopped
   *  waiting (a quorum was reached, the requester aborted or timed out) or went away.
   *  Without a handler they are dropped silently, as they are expected. */
  onError(handler: (error: QuicwireError) => void): this {
    if (typeof handler !== 'function') throw invalidArgument('onError takes a function');
    this.#errorHandler = handler;
    return this;
  }

  /** Handles messages sent to this agent by name; without a handler they queue for
   *  `receive()`. A sender's `send` resolves once this handler (or the queue) has it. */
  onMessage(handler: AgentMessageHandler): this {
    if (typeof handler !== 'function') throw invalidArgument('onMessage takes a function');
    this.#messageHandler = handler;
    return this;
  }

  /** Answers requests sent to this agent by name: the return value (or promise) is the
   *  reply; a throw reaches the requester as ERR_REMOTE with the error's message. */
  onRequest(handler: AgentRequestHandler): this {
    if (typeof handler !== 'function') throw invalidArgument('onRequest takes a function');
    this.#requestHandler = handler;
    return this;
  }

  /** Hears of agents joining and leaving the bus. */
  onPresence(handler: (event: PresenceEvent) => void): this {
    if (typeof handler !== 'function') throw invalidArgument('onPresence takes a function');
    const first = this.#presenceHandler === undefined;
    this.#presenceHandler = handler;
    if (first && this.#conn) this.#control({ op: 'watch', on: true }).catch(() => {});
    return this;
  }

  /** The next message sent to this agent that no `onMessage` handler took. */
  receive(options: { timeoutMs?: number } = {}): Promise<{ message: unknown; from: string }> {
    const { timeoutMs } = options;
    try {
      if (timeoutMs !== undefined) checkInteger('timeoutMs', timeoutMs);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#inbox.take(timeoutMs);
  }

  /** Sends `message` to the agent named `to`; resolves once that agent has it (its
   *  handler, or its queue). ERR_NO_RESPONDERS at once when no such agent is connected.
   *  `unconfirmed`: resolves once queued to go, and tells of neither. */
  send(to: string, message: unknown, options?: SendOptions): Promise<void> {
    let payload: Uint8Array;
    try {
      checkName('to', to);
      payload = encode(message, 'msgpack');
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#post(Kind.Send, to, payload, to, options) as Promise<undefined>;
  }

  /** Publishes `message` on `subject` (no wildcards): every subscriber gets it, one per
   *  queue group. Resolves with how many agents' handlers have it (0 when nobody
   *  subscribes); `unconfirmed`: with undefined, once queued to go. */
  publish(
    subject: string,
    message: unknown,
    options: SendOptions & { unconfirmed: true },
  ): Promise<undefined>;
  publish(subject: string, message: unknown, options?: SendOptions): Promise<number>;
  async publish(subject: string, message: unknown, options?: SendOptions): Promise<number | undefined> {
    checkSubject('subject', subject, false);
    return await this.#post(Kind.Publish, subject, encode(message, 'msgpack'), subject, options);
  }

  /** Sends `message` to every other agent on the bus; resolves with how many have it
   *  (`unconfirmed`: with undefined, once queued to go). */
  broadcast(message: unknown, options: SendOptions & { unconfirmed: true }): Promise<undefined>;
  broadcast(message: unknown, options?: SendOptions): Promise<number>;
  async broadcast(message: unknown, options?: SendOptions): Promise<number | undefined> {
    const payload = encode(message, 'msgpack');
    return await this.#post(Kind.Broadcast, undefined, payload, 'every agent', options);
  }

  /** A request to the agent named `to`; resolves with its handler's answer. */
  async request(to: string, message: unknown, options: AgentRequestOptions = {}): Promise<unknown> {
    checkName('to', to);
    const timeoutMs = this.#timeout(options);
    const payload = encode(message, 'msgpack');
    const frame = new FrameWriter(8 + to.length * 3 + payload.length)
      .u8(Kind.Request)
      .u32(timeoutMs)
      .str(to)
      .bytes(payload)
      .done();
    return decode(readAnswer(await this.#ask(frame, timeoutMs, options.signal)), 'msgpack');
  }

  /** Subscribes to `subject` (wildcards: `*` one token, `>` the rest). Resolves once the
   *  bus has it, so what is published after reaches the handler. */
  async subscribe(
    subject: string,
    handler: SubjectHandler,
    options: SubscribeOptions = {},
  ): Promise<Subscription> {
    checkSubject('subject', subject, true);
    if (typeof handler !== 'function') throw invalidArgument('subscribe takes a handler function');
    checkObject('subscribe options', options);
    checkKeys('subscribe', options, ['queue', 'signal']);
    const queue = options.queue ?? '';
    if (options.queue !== undefined) checkName('queue', queue);
    const sub: Sub = { sid: this.#nextSid++, subject, queue, handler };
    this.#subs.set(sub.sid, sub);
    const signal = options.signal;
    if (this.#conn) {
      try {
        await this.#control({ op: 'subscribe', sid: sub.sid, subject, queue }, signal ? { signal } : {});
      } catch (err) {
        await this.#unsubscribe(sub.sid).catch(() => {});
        throw err;
      }
    }
    return new Subscription(subject, queue, () => this.#unsubscribe(sub.sid));
  }

  /** Asks the subscribers of `subject` (one per queue group, `key` picking it); resolves
   *  with the first answer. ERR_NO_RESPONDERS when nobody subscribes; when every one
   *  failed, the first failure. */
  async ask(subject: string, message: unknown, options: AskOptions = {}): Promise<unknown> {
    const answers = await this.#gather(subject, message, 1, options, options.key ?? '');
    const found = answers.find((a) => 'value' in a) ?? answers[0];
    if (!found) throw new QuicwireError('ERR_NO_RESPONDERS', `no agent answered on ${subject}`);
    if ('error' in found) throw found.error;
    return found.value;
  }

  /** Asks the subscribers of `subject` and resolves with the first `threshold` answers
   *  that succeed; the calls still out are cancelled. Rejects when no quorum is possible:
   *  ERR_NO_RESPONDERS (fewer subscribers), ERR_TIMEOUT, or the failures' first. */
  async quorum(subject: string, message: unknown, options: QuorumOptions): Promise<Answer[]> {
    checkObject('quorum options', options);
    const threshold = checkInteger('threshold', options.threshold, 0xffff_ffff);
    if (threshold === 0) throw invalidArgument('threshold must be at least 1');
    const answers = await this.#gather(subject, message, threshold, options, '');
    const ok = answers.filter((a) => 'value' in a);
    if (ok.length >= threshold) return ok.slice(0, threshold);
    if (answers.length < threshold) {
      throw new QuicwireError(
        'ERR_NO_RESPONDERS',
        `a quorum of ${threshold} on ${subject}, but ${answers.length} agents subscribe`,
      );
    }
    const failed =
      answers.find((a) => 'error' in a && a.error.code === 'ERR_TIMEOUT') ??
      answers.find((a) => 'error' in a);
    const why = failed && 'error' in failed ? failed.error : undefined;
    throw new QuicwireError(
      why?.code ?? 'ERR_REMOTE',
      `no quorum on ${subject}: ${ok.length} of ${threshold} answered (${why?.message ?? ''})`,
      { cause: why },
    );
  }

  /** Asks every subscriber of `subject` (one per queue group) and resolves with all
   *  their answers and failures, once each answered or timed out (scatter-gather). */
  async scatter(subject: string, message: unknown, options: AgentRequestOptions = {}): Promise<Answer[]> {
    return this.#gather(subject, message, 0, options, '');
  }

  /** The names of the agents on the bus. */
  async agents(options?: AgentRequestOptions): Promise<string[]> {
    return (await this.#control({ op: 'agents' }, options)) as string[];
  }

  /** Takes (or, when this agent holds it, renews) a lease on `resource` for `ttlMs`: held
   *  by one agent at a time until it expires, is released, or its holder leaves. Says
   *  whether it was granted, and otherwise who holds it and for how long. */
  async lease(resource: string, ttlMs: number, options?: AgentRequestOptions): Promise<LeaseState> {
    checkName('resource', resource);
    checkInteger('ttlMs', ttlMs, DAY_MS);
    return (await this.#control({ op: 'lease', resource, ttlMs }, options)) as LeaseState;
  }

  /** Gives up a lease; false when this agent did not hold it (or it expired). */
  async release(resource: string, options?: AgentRequestOptions): Promise<boolean> {
    checkName('resource', resource);
    return (await this.#control({ op: 'release', resource }, options)) as boolean;
  }

  /** Leaves the bus: sends held or in flight reject with ERR_CONNECTION_CLOSED. */
  async close(): Promise<void> {
    if (this.#state === 'closed') return;
    this.#shut(new QuicwireError('ERR_CONNECTION_CLOSED', 'the agent is closed'));
    await this.#shared.closing;
  }

  // Sending.

  #post(
    kind: number,
    to: string | undefined,
    payload: Uint8Array,
    what: string,
    options: SendOptions | undefined,
  ): Promise<number | undefined> {
    if (this.#state === 'closed') return Promise.reject(this.#closedError());
    const signal = options?.signal;
    if (signal !== undefined) {
      if (!(signal instanceof AbortSignal))
        return Promise.reject(invalidArgument('signal must be an AbortSignal'));
      if (signal.aborted) return Promise.reject(aborted(signal));
    }
    const unconfirmed = options?.unconfirmed ?? false;
    if (typeof unconfirmed !== 'boolean')
      return Promise.reject(invalidArgument('unconfirmed must be a boolean'));
    const conn = this.#conn;
    if (!conn && this.#held.length >= this.#bufferLimit) {
      return Promise.reject(
        new QuicwireError(
          'ERR_FLOW_CONTROL_PAUSED',
          `the agent is reconnecting and holds ${this.#bufferLimit} messages already (bufferLimit)`,
        ),
      );
    }
    // Sequence number 0: unconfirmed, and the bus sends no ACK entry for it.
    let seq = 0;
    if (!unconfirmed) {
      this.#seq = (this.#seq + 1) >>> 0 || 1;
      seq = this.#seq;
    }
    const w = FrameWriter.scratch().u8(kind).u32(seq);
    if (to !== undefined) w.str(to);
    const frame = w.bytes(payload).done();
    if (unconfirmed) {
      if (conn) conn.post(frame, UNWATCHED, true);
      else this.#held.push({ out: undefined, frame: frame.slice() });
      return Promise.resolve(undefined);
    }
    const sent = new Promise<number | undefined>((resolve, reject) => {
      const out = new Outgoing(this.#pending, seq, resolve, reject, what, kind !== Kind.Send);
      this.#pending.set(seq, out);
      // Unconfirmed: the bus's ACK entry, not quicwire's ACK, settles it.
      if (conn) conn.post(frame, out, true);
      else this.#held.push({ out, frame: frame.slice() });
    });
    return signal ? this.#abortable(sent, seq, signal) : sent;
  }

  /** `sent`, or ERR_ABORTED when `signal` aborts first: a held message is dropped, one
   *  on its way may still arrive. */
  #abortable<T>(sent: Promise<T>, seq: number, signal: AbortSignal): Promise<T> {
    const abort = () => {
      const at = this.#held.findIndex((h) => h.out?.seq === seq);
      if (at >= 0) this.#held.splice(at, 1);
      this.#pending.get(seq)?.reject(aborted(signal));
    };
    signal.addEventListener('abort', abort, { once: true });
    const done = () => signal.removeEventListener('abort', abort);
    sent.then(done, done);
    return sent;
  }

  #acked(r: FrameReader): void {
    while (!r.done) {
      const seq = r.u32();
      const status = r.u16();
      const count = r.u32();
      this.#pending.get(seq)?.acked(status, count);
    }
  }

  async #ask(frame: Uint8Array, timeoutMs: number, signal: AbortSignal | undefined): Promise<Uint8Array> {
    const deadline = performance.now() + timeoutMs;
    const conn = this.#conn ?? (await this.#connection(timeoutMs, signal));
    const left = Math.max(1, Math.ceil(deadline - performance.now()));
    return (await conn.request(frame, {
      timeoutMs: left + MARGIN_MS,
      ...(signal && { signal }),
    })) as Uint8Array;
  }

  async #gather(
    subject: string,
    message: unknown,
    want: number,
    options: AgentRequestOptions & { key?: string },
    key: string,
  ): Promise<Answer[]> {
    checkSubject('subject', subject, false);
    if (key !== '') checkName('key', key);
    const timeoutMs = this.#timeout(options);
    const payload = encode(message, 'msgpack');
    const frame = new FrameWriter(16 + subject.length * 3 + key.length * 3 + payload.length)
      .u8(Kind.Gather)
      .u32(timeoutMs)
      .u32(want)
      .str(subject)
      .str(key)
      .bytes(payload)
      .done();
    const r = new FrameReader(readAnswer(await this.#ask(frame, timeoutMs, options.signal)));
    const answers: Answer[] = [];
    for (let n = r.u32(); n > 0; n--) {
      const from = r.str();
      const status = r.u16();
      const body = r.bytes(r.u32());
      if (status === OK) answers.push({ from, value: decode(body, 'msgpack') });
      else answers.push({ from, error: statusError(status, new TextDecoder().decode(body)) });
    }
    return answers;
  }

  #timeout(options: AgentRequestOptions): number {
    checkObject('request options', options);
    if (options.signal !== undefined && !(options.signal instanceof AbortSignal)) {
      throw invalidArgument('signal must be an AbortSignal');
    }
    if (options.signal?.aborted) throw aborted(options.signal);
    return checkInteger('timeoutMs', options.timeoutMs ?? this.#requestTimeoutMs, DAY_MS);
  }

  async #control(c: Control, options: AgentRequestOptions = {}): Promise<unknown> {
    const timeoutMs = this.#timeout(options);
    const body = encodeControl(c);
    const frame = new FrameWriter(1 + body.length).u8(Kind.Control).bytes(body).done();
    return decode(readAnswer(await this.#ask(frame, timeoutMs, options.signal)), 'msgpack');
  }

  async #unsubscribe(sid: number): Promise<void> {
    if (!this.#subs.delete(sid)) return;
    if (this.#conn) await this.#control({ op: 'unsubscribe', sid });
  }

  /** The connection, once (re)connected. */
  #connection(timeoutMs: number, signal: AbortSignal | undefined): Promise<Connection> {
    if (this.#state === 'closed') return Promise.reject(this.#closedError());
    return new Promise((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.#waiters.delete(waiter);
      };
      const waiter = {
        resolve: (c: Connection) => {
          done();
          resolve(c);
        },
        reject: (e: QuicwireError) => {
          done();
          reject(e);
        },
      };
      const onAbort = () => waiter.reject(aborted(signal as AbortSignal));
      const timer = setTimeout(
        () =>
          waiter.reject(
            new QuicwireError('ERR_TIMEOUT', `not reconnected to the bus within ${timeoutMs} ms`),
          ),
        timeoutMs,
      );
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#waiters.add(waiter);
    });
  }

  // Receiving.

  #message(body: Uint8Array): void {
    try {
      this.#handle(body);
    } catch (err) {
      // A frame this agent cannot read: the bus is not one. A payload another agent sent
      // that is not MessagePack: onError hears of it. A handler's own throw goes on.
      if (!(err instanceof QuicwireError)) throw err;
      if (err.code === 'ERR_PROTOCOL') this.#conn?.close();
      else if (err.code === 'ERR_DECODE') this.#errorHandler?.(err);
      else throw err;
    }
  }

  #handle(body: Uint8Array): void {
    const r = new FrameReader(body);
    const kind = r.u8();
    if (kind === Kind.Ack) {
      this.#acked(r);
    } else if (kind === Kind.Deliver) {
      const from = r.str();
      const message = decode(r.rest(), 'msgpack');
      if (this.#messageHandler) this.#messageHandler(message, { from });
      else this.#inbox.put({ message, from });
    } else if (kind === Kind.Event) {
      const sids = readSids(r);
      const subject = r.str();
      const from = r.str();
      const message = decode(r.rest(), 'msgpack');
      for (const sid of sids) this.#subs.get(sid)?.handler(message, { subject, from });
    } else if (kind === Kind.Presence) {
      const joined = r.u8() === 1;
      this.#presenceHandler?.({ event: joined ? 'join' : 'leave', name: r.str() });
    }
  }

  /** `request`: the call's info, whose signal is only made if a handler asks for it. */
  async #called(body: Uint8Array, request: RequestInfo): Promise<Uint8Array> {
    const r = new FrameReader(body);
    const kind = r.u8();
    if (kind === Kind.Call) {
      const from = r.str();
      const message = decode(r.rest(), 'msgpack');
      if (!this.#requestHandler) throw new Error(`agent ${this.name} has no request handler (onRequest)`);
      const info: Called = {
        from,
        get signal() {
          return request.signal;
        },
      };
      return encode(await this.#requestHandler(message, info), 'msgpack');
    }
    if (kind === Kind.CallSubject) {
      const sids = readSids(r);
      const subject = r.str();
      const from = r.str();
      const message = decode(r.rest(), 'msgpack');
      // One answer from this agent, by its first subscription still there.
      const sub = sids.map((sid) => this.#subs.get(sid)).find((s) => s !== undefined);
      if (!sub) throw new Error(`agent ${this.name} no longer subscribes to ${subject}`);
      const info = {
        subject,
        from,
        get signal() {
          return request.signal;
        },
      };
      return encode(await sub.handler(message, info), 'msgpack');
    }
    throw new QuicwireError('ERR_PROTOCOL', `unknown bus request kind ${kind}`);
  }

  // The connection: attach, drop, reconnect.

  /** Says hello on a new connection, then sends what was held, in order. */
  async #attach(conn: Connection): Promise<void> {
    const hello = encodeControl({
      op: 'hello',
      name: this.name,
      instance: this.#instance,
      watch: this.#presenceHandler !== undefined,
      subscriptions: [...this.#subs.values()].map(({ sid, subject, queue }) => ({ sid, subject, queue })),
    });
    const frame = new FrameWriter(1 + hello.length).u8(Kind.Control).bytes(hello).done();
    // The hello is part of connecting: a bus that went quiet fails it in the same time.
    try {
      readAnswer((await conn.request(frame, { timeoutMs: this.#connectTimeoutMs })) as Uint8Array);
    } catch (err) {
      conn.close();
      throw err;
    }
    if (this.#state === 'closed') {
      conn.close();
      return;
    }
    // Held frames go first, before anything sent from now on.
    for (const { out, frame } of this.#held.splice(0)) conn.post(frame, out ?? UNWATCHED, true);
    this.#conn = conn;
    this.#setState('connected');
    for (const w of [...this.#waiters]) w.resolve(conn);
  }

  #dropped(conn: Connection, reason: QuicwireError): void {
    this.#shared.agents.delete(conn);
    if (conn !== this.#conn) return;
    this.#conn = undefined;
    // What went out and was not acknowledged may or may not have arrived.
    const lost = new QuicwireError(
      'ERR_CONNECTION_CLOSED',
      `the connection to the bus closed (${reason.message}); the message may not have been delivered`,
      { cause: reason },
    );
    for (const p of [...this.#pending.values()]) p.reject(lost);
    if (this.#state === 'closed') return;
    if (this.#reconnect === false) {
      this.#shut(reason);
      return;
    }
    this.#setState('reconnecting', reason);
    void this.#reconnectLoop(this.#reconnect);
  }

  async #reconnectLoop(r: Required<ReconnectOptions>): Promise<void> {
    for (let attempt = 0; attempt < r.maxAttempts; attempt++) {
      const delay = Math.min(r.maxDelayMs, r.initialDelayMs * 2 ** attempt);
      // Jitter over the delay's upper half: agents dropped together do not return together.
      await sleep(delay / 2 + Math.random() * (delay / 2));
      if (this.#state === 'closed') return;
      try {
        await this.#attach(await this.#dial());
        return;
      } catch (err) {
        if ((this.#state as State) === 'closed') return;
        if (err instanceof QuicwireError && err.code === 'ERR_NAME_TAKEN') {
          this.#shut(err); // Another agent took the name meanwhile.
          return;
        }
      }
    }
    this.#shut(
      new QuicwireError('ERR_CONNECTION_CLOSED', `gave up reconnecting after ${r.maxAttempts} attempts`),
    );
  }

  #shut(reason: QuicwireError): void {
    if (this.#state === 'closed') return;
    this.#closeReason = reason;
    const closed = this.#closedError();
    for (const p of [...this.#pending.values()]) p.reject(closed);
    this.#held.length = 0;
    for (const w of [...this.#waiters]) w.reject(closed);
    this.#inbox.close(closed);
    this.#setState('closed', reason);
    this.#conn?.close();
    this.#conn = undefined;
    this.#shared.release();
  }

  #closedError(): QuicwireError {
    const reason = this.#closeReason;
    return new QuicwireError(
      'ERR_CONNECTION_CLOSED',
      `agent ${this.name} is closed: ${reason?.message ?? ''}`,
      {
        cause: reason,
      },
    );
  }

  #setState(state: State, reason?: QuicwireError): void {
    if (this.#state === state) return;
    this.#state = state;
    this.#stateHandler?.(state, reason);
  }
}

/** What an agent hears of its connection. */
interface AgentLink {
  message(body: Uint8Array): void;
  called(body: Uint8Array, request: RequestInfo): Promise<Uint8Array>;
  dropped(conn: Connection, reason: QuicwireError): void;
  failed(err: QuicwireError): void;
}

/** One transport (one engine, one UDP socket) for the agents of a process that connect
 *  with the same options, each on a connection of its own: the engine then reads and
 *  sends for all of them at once, as one agent's would. Closed with its last agent. */
class Shared {
  static readonly #all = new Map<string, Shared>();
  readonly transport: QuicTransport;
  readonly agents = new Map<Connection, AgentLink>();
  #users = 0;
  #key: string | undefined;
  /** Settles once the transport is closed (after its last agent). */
  closing: Promise<void> = Promise.resolve();

  private constructor(options: TransportOptions, key: string | undefined) {
    this.#key = key;
    this.transport = new QuicTransport({
      ...options,
      encoding: 'raw',
      idleTimeoutMs: DAY_MS,
      maxConnections: 1 << 20,
    });
    const of = (conn: Connection) => this.agents.get(conn);
    this.transport.onMessage((body, conn) => of(conn)?.message(body as Uint8Array));
    this.transport.onRequest((body, conn, info) => {
      const agent = of(conn);
      if (!agent) throw new Error('the agent is closed');
      return agent.called(body as Uint8Array, info);
    });
    this.transport.onDisconnect((conn, reason) => of(conn)?.dropped(conn, reason));
    this.transport.onError((err, conn) => of(conn)?.failed(err));
  }

  /** The transport for these options (options with functions, such as `keyLog`, get
   *  one of their own). */
  static take(options: Omit<TransportOptions, 'encoding' | 'maxConnections' | 'idleTimeoutMs'>): Shared {
    const plain = Object.values(options).every((v) => typeof v !== 'function');
    const key = plain
      ? JSON.stringify(Object.entries(options).sort(([a], [b]) => (a < b ? -1 : 1)))
      : undefined;
    let shared = key === undefined ? undefined : Shared.#all.get(key);
    if (!shared) {
      shared = new Shared(options, key);
      if (key !== undefined) Shared.#all.set(key, shared);
    }
    shared.#users++;
    return shared;
  }

  release(): void {
    if (--this.#users > 0) return;
    if (this.#key !== undefined && Shared.#all.get(this.#key) === this) Shared.#all.delete(this.#key);
    this.#key = undefined;
    this.closing = this.transport.close();
  }
}

/** A send, publish or broadcast until the bus's ACK settles it. It is also the delivery
 *  its frame goes with (no promise of its own): reaching the bus settles nothing, failing
 *  to reach it fails the send. */
class Outgoing implements Delivery {
  remaining = 1;

  constructor(
    readonly pending: Map<number, Outgoing>,
    readonly seq: number,
    readonly settle: (count: number | undefined) => void,
    readonly fail: (err: QuicwireError) => void,
    /** What it was sent to, for its error's message. */
    readonly to: string,
    /** A publish or broadcast resolves with its count; a send with nothing. */
    readonly counts: boolean,
  ) {}

  resolve(): void {}

  reject(err: QuicwireError): void {
    if (this.pending.get(this.seq) !== this) return;
    this.pending.delete(this.seq);
    this.fail(err);
  }

  acked(status: number, count: number): void {
    if (status !== OK) {
      this.reject(statusError(status, ackMessage(status, this.to)));
      return;
    }
    this.pending.delete(this.seq);
    this.settle(this.counts ? count : undefined);
  }
}

/** A subscription; `unsubscribe()` ends it. */
export class Subscription {
  readonly subject: string;
  /** Its queue group ('' for none). */
  readonly queue: string;
  readonly #end: () => Promise<void>;

  constructor(subject: string, queue: string, end: () => Promise<void>) {
    this.subject = subject;
    this.queue = queue;
    this.#end = end;
  }

  unsubscribe(): Promise<void> {
    return this.#end();
  }
}

function readSids(r: FrameReader): number[] {
  const sids: number[] = [];
  for (let n = r.u16(); n > 0; n--) sids.push(r.u32());
  return sids;
}

function ackMessage(status: number, to: string): string {
  const code = statusCode(status);
  if (code === 'ERR_NO_RESPONDERS') return `no agent named ${JSON.stringify(to)} is connected`;
  if (code === 'ERR_CONNECTION_CLOSED') return `${to} left before it had the message`;
  if (code === 'ERR_FLOW_CONTROL_PAUSED') return `${to} reads too slowly: the bus's buffer for it is full`;
  return `the bus could not deliver to ${to} (${code})`;
}

function checkName(what: string, name: unknown): string {
  const s = checkString(what, name);
  // Up to 85 characters are at most 255 bytes of UTF-8: only longer ones are measured.
  if (s.length > 85 && new TextEncoder().encode(s).length > 255)
    throw invalidArgument(`${what} is over 255 bytes`);
  return s;
}

function parseTarget(target: unknown): [string, number] {
  const m = typeof target === 'string' ? /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(target) : null;
  if (!m) throw invalidArgument(`invalid bus address ${JSON.stringify(target)}: expected host:port`);
  return [(m[1] ?? m[2]) as string, Number(m[3])];
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
