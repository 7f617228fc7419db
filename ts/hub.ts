// One hub per process: it batches everything JS sends into one engine call per tick and
// dispatches everything the engine received, one batch per wake-up.

import { Connection, type Owner } from './connection.js';
import type { ConnectionInfo, Engine, EventBatch, WriteFailure } from './engine.js';
import { connectionInfo, eventBody } from './engine.js';
import { codeOf, fromEngine, QuicwireError } from './errors.js';
import { EVENT_WORDS, Event, LARGE_BODY, OP_WORDS, Op } from './layout.js';
import { soon } from './platform.js';

/** What to tell when an op of the current batch is done. */
interface OpResult {
  ok(): void;
  fail(err: QuicwireError): void;
}

interface PendingRequest {
  connection: Connection;
  resolve(body: Uint8Array): void;
  reject(err: QuicwireError): void;
}

/** Bytes of queued bodies at which the batch goes to the engine at once. */
const FLUSH_AT = 32 << 10;

const text = new TextDecoder();
const noop = () => {};
const EMPTY = new Uint8Array(0);

/** The error of a request whose `signal` aborted. */
export function aborted(signal: AbortSignal): QuicwireError {
  return new QuicwireError('ERR_ABORTED', 'the request was aborted', { cause: signal.reason });
}

/** How soon the queued ops are flushed: none scheduled, after the current task, or once the
 *  current microtasks are done. A later one is not scheduled when a sooner one is. */
const Due = { None: 0, Task: 1, Microtask: 2 } as const;

export class Hub {
  readonly engine: Engine;
  #buf = new Uint8Array(1 << 16);
  #len = 0;
  /** Queued ops, OP_WORDS numbers each, written in place (no array of boxed numbers). */
  #ops = new Float64Array(OP_WORDS * 1024);
  #opsLen = 0;
  #results: (OpResult | undefined)[] = [];
  #due: number = Due.None;
  /** Set while the network's events are handed out (until the next flush): what the
   *  application queues in answer then goes out once that callback's microtasks are done,
   *  in one datagram with the ACKs and stream credit the engine owes for what arrived,
   *  instead of a task later and in a datagram of its own. */
  #answering = false;
  readonly #connections = new Map<number, Connection>();
  readonly #owners = new Map<number, Owner>();
  readonly #requests = new Map<number, PendingRequest>();
  /** A TRACE event's context, for the REQUEST event after it. */
  #trace: { connection: number; handle: number; context: Uint8Array } | undefined;
  #nextRequest = 1;
  #keepAlive: ReturnType<typeof setInterval> | undefined;
  #holds = 0;

  constructor(engine: Engine) {
    this.engine = engine;
    engine.startEvents(
      () => this.#drain(),
      (owner) => this.#owners.get(owner)?.borrowsMessages === true,
    );
  }

  addOwner(handle: number, owner: Owner): void {
    this.#owners.set(handle, owner);
    this.#updateKeepAlive();
  }

  removeOwner(handle: number): void {
    this.#owners.delete(handle);
    this.#updateKeepAlive();
  }

  /** The Connection object for an engine connection, created on first sight. */
  attach(owner: Owner, info: ConnectionInfo): Connection {
    let conn = this.#connections.get(info.id);
    if (!conn) {
      conn = new Connection(this, owner, info);
      this.#connections.set(info.id, conn);
      owner.connected(conn);
      this.#updateKeepAlive();
    }
    return conn;
  }

  /** Queues an op for the next flush. `body` is copied now, so callers may reuse it. */
  queue(
    op: number,
    target: number,
    id: number,
    body: Uint8Array,
    extra: number,
    result?: OpResult,
    priority = 0,
  ) {
    // From LARGE_BODY on a body goes to the engine at once, not through the batch buffer.
    if (body.length >= LARGE_BODY) {
      // The engine copies it once; the batch copy would be one copy too many. What is
      // queued goes first, so the order holds.
      this.flush();
      this.#write(body, Float64Array.of(op, target, id, body.length, extra, priority), [result], true);
      return;
    }
    const need = this.#len + body.length;
    if (need > this.#buf.length) {
      const grown = new Uint8Array(Math.max(need, this.#buf.length * 2));
      grown.set(this.#buf.subarray(0, this.#len));
      this.#buf = grown;
    }
    this.#buf.set(body, this.#len);
    this.#len = need;
    if (this.#opsLen + OP_WORDS > this.#ops.length) {
      const grown = new Float64Array(this.#ops.length * 2);
      grown.set(this.#ops);
      this.#ops = grown;
    }
    const ops = this.#ops;
    const at = this.#opsLen;
    ops[at] = op;
    ops[at + 1] = target;
    ops[at + 2] = id;
    ops[at + 3] = body.length;
    ops[at + 4] = extra;
    ops[at + 5] = priority;
    this.#opsLen = at + OP_WORDS;
    this.#results.push(result);
    // A long burst goes out as it is made, so the peer works on it meanwhile (a socket
    // write does the same): without this, the batch waits for the task to end.
    if (this.#len >= FLUSH_AT) {
      this.flush();
      return;
    }
    const due = this.#answering ? Due.Microtask : Due.Task;
    if (due > this.#due) {
      this.#due = due;
      if (due === Due.Microtask) queueMicrotask(() => this.flush());
      else soon(() => this.flush());
    }
  }

  /** Starts a request; resolves with the raw answer body. An aborted `signal` rejects it
   *  with ERR_ABORTED and resets its stream. */
  request(
    connection: Connection,
    body: Uint8Array,
    how: {
      timeoutMs: number;
      priority: number;
      idempotent: boolean;
      signal: AbortSignal | undefined;
      /** Its trace context (ts/tracing.ts), for the peer. */
      trace: Uint8Array | undefined;
    },
  ): Promise<Uint8Array> {
    const { signal } = how;
    if (signal?.aborted) return Promise.reject(aborted(signal));
    const id = this.#nextRequest++;
    return new Promise<Uint8Array>((resolve, reject) => {
      if (signal) {
        const abort = () => {
          if (!this.#requests.delete(id)) return;
          this.queue(Op.Cancel, connection.id, id, EMPTY, 0);
          reject(aborted(signal));
        };
        signal.addEventListener('abort', abort, { once: true });
        // Settled: the listener goes, so a long-lived signal does not keep it.
        const done = () => signal.removeEventListener('abort', abort);
        this.#requests.set(id, {
          connection,
          resolve: (body) => {
            done();
            resolve(body);
          },
          reject: (err) => {
            done();
            reject(err);
          },
        });
      } else {
        this.#requests.set(id, { connection, resolve, reject });
      }
      const result = {
        ok: noop,
        fail: (err: QuicwireError) => {
          this.#requests.get(id)?.reject(err);
          this.#requests.delete(id);
        },
      };
      const op = how.idempotent ? Op.IdempotentRequest : Op.Request;
      if (how.trace) this.queue(Op.Trace, connection.id, id, how.trace, 0);
      this.queue(op, connection.id, id, body, how.timeoutMs, result, how.priority);
    });
  }

  /** Hands the queued ops to the engine in one call. */
  flush(): void {
    this.#due = Due.None;
    this.#answering = false;
    if (this.#opsLen === 0) return;
    // Engines copy what they keep before write returns, so both buffers are reused.
    const ops = this.#ops.subarray(0, this.#opsLen);
    const results = this.#results;
    const data = this.#buf.subarray(0, this.#len);
    this.#opsLen = 0;
    this.#len = 0;
    this.#results = [];
    this.#write(data, ops, results);
  }

  /** One engine call; tells each op's result. */
  #write(data: Uint8Array, ops: Float64Array, results: (OpResult | undefined)[], coalesce = false): void {
    let failures: WriteFailure[];
    try {
      failures = this.engine.write(data, ops, coalesce);
    } catch (err) {
      const e = fromEngine(err);
      for (const r of results) r?.fail(e);
      return;
    }
    const failed = new Map<number, QuicwireError>();
    for (const f of failures) failed.set(f.op, f.error);
    for (let i = 0; i < results.length; i++) {
      const r = results[i];
      if (!r) continue;
      const err = failed.get(i);
      if (err) r.fail(err);
      else r.ok();
    }
  }

  #drain(): void {
    let batch = this.engine.takeEvents();
    if (batch) this.#answering = true;
    while (batch) {
      this.#dispatch(batch);
      batch = this.engine.takeEvents();
    }
  }

  #dispatch(batch: EventBatch): void {
    const meta = batch.meta;
    for (let i = 0; i < meta.length; i += EVENT_WORDS) {
      try {
        this.#event(batch, i);
      } catch (err) {
        // An application handler threw: the error surfaces as an uncaught exception, as an
        // event listener's would, once the batch's other events have reached theirs.
        queueMicrotask(() => {
          throw err;
        });
      }
    }
  }

  #event(batch: EventBatch, i: number): void {
    const meta = batch.meta;
    const kind = meta[i];
    const a = meta[i + 1] as number;
    const b = meta[i + 2] as number;
    const c = meta[i + 3] as number;
    const body = eventBody(batch, i);
    switch (kind) {
      case Event.Connection: {
        const owner = this.#owners.get(b);
        if (!owner) break;
        this.attach(owner, connectionInfo(batch, i));
        break;
      }
      case Event.Message:
        this.#connections.get(a)?.delivered(body, batch.lent, c === 1);
        break;
      case Event.KeyLog:
        this.#owners.get(b)?.keyLogged(text.decode(body));
        break;
      case Event.Qlog:
        this.#owners.get(b)?.qlogged(text.decode(body), a);
        break;
      case Event.Datagram:
        this.#connections.get(a)?.datagramArrived(body);
        break;
      case Event.Trace:
        // For the REQUEST event right after it; copied, as the batch's bytes are reused.
        this.#trace = { connection: a, handle: b, context: body.slice() };
        break;
      case Event.Request: {
        const trace = this.#trace;
        this.#trace = undefined;
        const context = trace?.connection === a && trace.handle === b ? trace.context : undefined;
        this.#connections.get(a)?.requested(b, body, c === 1, context);
        break;
      }
      case Event.Response: {
        const r = this.#requests.get(b);
        if (r) {
          this.#requests.delete(b);
          r.resolve(body);
        }
        break;
      }
      case Event.RequestFailed: {
        const r = this.#requests.get(b);
        if (r) {
          this.#requests.delete(b);
          r.reject(this.#error(c, body));
        }
        break;
      }
      case Event.RequestCancelled:
        this.#connections.get(a)?.cancelled(b);
        break;
      case Event.Acked:
        this.#connections.get(a)?.acked(c, b);
        break;
      case Event.Closed: {
        const conn = this.#connections.get(a);
        if (conn) {
          this.#connections.delete(a);
          conn.closedBy(this.#error(c, body));
          this.#updateKeepAlive();
        }
        break;
      }
    }
  }

  #error(code: number, body: Uint8Array): QuicwireError {
    return new QuicwireError(codeOf(code), text.decode(body));
  }

  /** Keeps the process alive while `work` is in flight (a handshake has no connection yet). */
  async hold<T>(work: Promise<T>): Promise<T> {
    this.#holds++;
    this.#updateKeepAlive();
    try {
      return await work;
    } finally {
      this.#holds--;
      this.#updateKeepAlive();
    }
  }

  /** Open servers and connections keep the process alive, as sockets do. */
  #updateKeepAlive(): void {
    const busy =
      this.#holds > 0 || (this.#owners.size > 0 && (this.#connections.size > 0 || this.#hasServer()));
    if (busy && !this.#keepAlive) {
      this.#keepAlive = setInterval(noop, 1 << 30);
    } else if (!busy && this.#keepAlive) {
      clearInterval(this.#keepAlive);
      this.#keepAlive = undefined;
    }
  }

  #hasServer(): boolean {
    for (const o of this.#owners.values()) if (o.isServer) return true;
    return false;
  }
}
