// The backend over quicwire's sans-IO engine (crates/quicwire-engine), whichever shell runs
// it: the napi addon (native: the engine drives its own socket and timer from Node's event
// loop, ts/native.ts) or WebAssembly (the platform's datagrams and timers, ts/wasm.ts). Both
// expose the same engine API (ts/shell.ts); this routes ops to the engine of their
// connection, turns handshakes into promises (ts/slot.ts), and hands event batches to the
// hub, large bodies lent where a handler borrows them (ts/lending.ts).

import { concat } from './bytes.js';
import { isTunnel, StreamCarrier } from './carrier.js';
import type {
  ConnectionInfo,
  Engine,
  EngineClientOptions,
  EngineServerOptions,
  EventBatch,
  ServerInfo,
  WriteFailure,
} from './engine.js';
import { connectionInfo, eventBody } from './engine.js';
import { codeOf, fromEngine, QuicwireError } from './errors.js';
import { EVENT_WORDS, Event, OP_WORDS, SERVER_OPTIONS, TRANSPORT_OPTIONS } from './layout.js';
import { Lender } from './lending.js';
import { ipFamily, platform, soon, urlHost } from './platform.js';
import { failures, type IoFactory, positional, type Shell, type ShellEngine } from './shell.js';
import { Slot } from './slot.js';
import { type EngineFigures, poolStats, serverStats } from './stats.js';
import type { DevCert, PoolStats, ServerStats } from './types.js';

const text = new TextDecoder();
const NO_BODIES: Uint8Array[] = [];
const NO_DATA = new Uint8Array(0);
/** A server with `tcp` on port 0: how many free UDP ports it tries for one whose TCP port of
 *  the same number is free too. */
const TCP_PORT_TRIES = 8;
/** How long a closing endpoint's sockets stay, for its CONNECTION_CLOSE datagrams to leave. */
const CLOSE_LINGER_MS = 50;
/** An event batch waiting for the hub, or handed to it. */
interface Queued<E extends ShellEngine> {
  batch: EventBatch;
  slot: Slot<E>;
  /** RECEIPT triples to acknowledge once the batch is dispatched. */
  receipts: number[];
  /** The buffer its lent bodies are in, reused once the batch is dispatched. */
  lentIn: Uint8Array | undefined;
}

export class EngineBackend<E extends ShellEngine = ShellEngine> implements Engine {
  readonly name: 'native' | 'wasm';
  readonly #shell: Shell<E>;
  readonly #io: IoFactory<E>;
  readonly #resolve: (host: string) => Promise<{ address: string; family: 4 | 6 }>;
  /** Clients and servers by their handle (never reused). */
  readonly #slots = new Map<number, Slot<E>>();
  #nextSlot = 1;
  /** Each open connection's engine. Connection ids are the engines' own: unique in the
   *  process and never reused (quicwire_engine::ConnId), so they need no translation. */
  readonly #routes = new Map<number, Slot<E>>();
  #notify: () => void = () => {};
  #borrows: (owner: number) => boolean = () => false;
  /** Event batches as the engines produced them, waiting for the hub. */
  #batches: Queued<E>[] = [];
  /** The batch the hub took last: its messages are acknowledged when it asks again. */
  #handed: Queued<E> | undefined;
  readonly #lender = new Lender();
  #notifyScheduled = false;

  constructor(
    name: 'native' | 'wasm',
    shell: Shell<E>,
    io: IoFactory<E>,
    resolve: (host: string) => Promise<{ address: string; family: 4 | 6 }>,
  ) {
    this.name = name;
    this.#shell = shell;
    this.#io = io;
    this.#resolve = resolve;
  }

  sendBuffer(size: number): Uint8Array {
    return this.#shell.sendBuffer?.(size) ?? new Uint8Array(size);
  }

  startEvents(notify: () => void, borrows: (owner: number) => boolean): void {
    this.#notify = notify;
    this.#borrows = borrows;
  }

  // The hub dispatches a batch before it asks for the next one (and asks until there is
  // none), so asking again means the messages handed before reached the application.
  takeEvents(): EventBatch | null {
    const handed = this.#handed;
    this.#handed = undefined;
    if (handed?.lentIn) this.#lender.giveBack(handed.lentIn);
    if (handed && handed.receipts.length > 0 && !handed.slot.closed) {
      handed.slot.engine.acknowledge(Float64Array.from(handed.receipts));
      this.#step(handed.slot, false); // the hub is taking events now
    }
    const next = this.#batches.shift();
    if (!next) return null;
    this.#handed = next;
    return next.batch;
  }

  /** Wakes the hub once, after the current task. */
  #notifySoon(): void {
    if (!this.#notifyScheduled) {
      this.#notifyScheduled = true;
      soon(() => {
        this.#notifyScheduled = false;
        this.#notify();
      });
    }
  }

  #slot(handle: number): Slot<E> {
    const slot = this.#slots.get(handle);
    if (!slot || slot.closed) throw new QuicwireError('ERR_CONNECTION_CLOSED', 'this endpoint is closed');
    return slot;
  }

  #add(engine: E): Slot<E> {
    const slot = new Slot(this.#nextSlot++, engine);
    slot.tunnels = new StreamCarrier(
      platform().streams,
      (data, lens, addrs) => slot.io.carried(data, lens, addrs),
      (addr) => this.#tunnelLost(slot, addr),
    );
    slot.io = this.#io(engine, (events) => this.#afterIo(slot, events), slot.tunnels);
    this.#slots.set(slot.id, slot);
    return slot;
  }

  write(data: Uint8Array, ops: Float64Array, coalesce = false): WriteFailure[] {
    // A batch almost always belongs to one engine (one client's or server's connections):
    // it then goes over whole, without taking it apart per op.
    let only: Slot<E> | undefined;
    let last = -1;
    for (let i = 1; i < ops.length; i += OP_WORDS) {
      const target = ops[i] as number;
      if (target === last) continue;
      last = target;
      const slot = this.#routes.get(target);
      if (!slot || slot.closed || (only && slot !== only)) return this.#writeSplit(data, ops);
      only = slot;
    }
    if (!only) return [];
    const failed = only.engine.write(data, ops);
    if (coalesce) this.#stepSoon(only);
    else this.#step(only);
    return failures(failed);
  }

  /** A batch for several engines (or a closed one): each engine gets its share. */
  #writeSplit(data: Uint8Array, ops: Float64Array): WriteFailure[] {
    const perSlot = new Map<Slot<E>, { ops: number[]; bodies: Uint8Array[]; index: number[] }>();
    const failed: WriteFailure[] = [];
    let offset = 0;
    for (let i = 0, n = 0; i < ops.length; i += OP_WORDS, n++) {
      const [op, target, id, len, extra, priority] = ops.subarray(i, i + OP_WORDS) as unknown as number[];
      const body = data.subarray(offset, offset + (len as number));
      offset += len as number;
      const slot = this.#routes.get(target as number);
      if (!slot || slot.closed) {
        const error = new QuicwireError('ERR_CONNECTION_CLOSED', `connection ${target} is closed`);
        failed.push({ op: n, error });
        continue;
      }
      let batch = perSlot.get(slot);
      if (!batch) {
        batch = { ops: [], bodies: [], index: [] };
        perSlot.set(slot, batch);
      }
      batch.ops.push(
        op as number,
        target as number,
        id as number,
        len as number,
        extra as number,
        priority as number,
      );
      batch.bodies.push(body);
      batch.index.push(n);
    }
    for (const [slot, batch] of perSlot) {
      const result = slot.engine.write(concat(batch.bodies), Float64Array.from(batch.ops));
      failed.push(...failures(result, (op) => batch.index[op] as number));
      this.#step(slot);
    }
    return failed;
  }

  createClient(options: EngineClientOptions): number {
    const engine = this.#call(() =>
      this.#shell.Engine.client(
        options.ca,
        options.insecure ?? false,
        options.encodings,
        positional(TRANSPORT_OPTIONS, options.transport),
      ),
    );
    const slot = this.#add(engine);
    slot.carrier = options.carrier ?? 'udp';
    slot.fallbackDelayMs = options.fallbackDelayMs ?? 0;
    if (slot.carrier === 'webtransport') {
      try {
        if (!slot.io.useWebTransport || !engine.connectWeb) {
          throw new QuicwireError(
            'ERR_BACKEND_UNAVAILABLE',
            `transport: 'webtransport' is the browser's; the ${this.name} backend sends QUIC over UDP itself`,
          );
        }
        slot.io.useWebTransport(options.webTransport ?? { path: '/', certificateHashes: [] });
        slot.webPath = options.webTransport?.path ?? '/';
      } catch (err) {
        void this.#shutdown(slot);
        throw err;
      }
    }
    return slot.id;
  }

  async connect(client: number, host: string, port: number, tag = 0): Promise<ConnectionInfo> {
    const slot = this.#slot(client);
    // The pool's rules first: a bad host fails before any DNS lookup.
    this.#call(() => this.#shell.poolKey(host, port));
    if (slot.carrier === 'webtransport') return this.#connectWeb(slot, host, port, tag);
    // Over TCP alone, the platform's stream resolves the name itself (a browser can only).
    const { address, family } =
      slot.carrier === 'tcp' ? { address: host, family: 4 as const } : await this.#resolve(host);
    await slot.io.socket(family, undefined, 0);
    const direct = family === 6 ? `[${address}]:${port}` : `${address}:${port}`;
    // A tunnel's TCP connection opens only if the engine sends there: with 'auto', only if
    // UDP has not finished the handshake by the fallback delay.
    const tunnel = slot.carrier === 'udp' ? undefined : slot.tunnels.reserve(host, port);
    let id: number;
    try {
      id = this.#call(() =>
        tunnel === undefined
          ? slot.engine.connect(host, port, direct, tag)
          : slot.carrier === 'tcp'
            ? slot.engine.connect(host, port, tunnel, tag)
            : slot.engine.connectRacing(host, port, direct, tunnel, slot.fallbackDelayMs, tag),
      );
    } catch (err) {
      if (tunnel !== undefined) slot.tunnels.release(tunnel);
      throw err;
    }
    if (tunnel !== undefined) {
      // A pooled connection (or a handshake under way) serves instead: no tunnel for it.
      if (this.#routes.has(id)) slot.tunnels.release(tunnel);
      else slot.tunnelOf.set(id, tunnel);
    }
    this.#routes.set(id, slot);
    this.#step(slot);
    return slot.handshake(id);
  }

  /** A connection over the browser's WebTransport, which resolves the name itself. */
  #connectWeb(slot: Slot<E>, host: string, port: number, tag: number): Promise<ConnectionInfo> {
    const url = `https://${urlHost(host)}:${port}${slot.webPath}`;
    const id = this.#call(() =>
      (slot.engine.connectWeb as NonNullable<E['connectWeb']>)(host, port, url, tag),
    );
    this.#routes.set(id, slot);
    this.#step(slot);
    return slot.handshake(id);
  }

  disconnect(connection: number): void {
    const slot = this.#routes.get(connection);
    if (!slot || slot.closed) return;
    slot.engine.disconnect(connection);
    this.#step(slot);
  }

  poolStats(client: number): Omit<PoolStats, 'answersFailed'> {
    return poolStats(this.#figures(this.#slot(client)));
  }

  async rebind(client: number): Promise<void> {
    const slot = this.#slots.get(client);
    if (!slot || slot.closed) throw new QuicwireError('ERR_CONNECTION_CLOSED', 'the transport is closed');
    await slot.io.rebind();
    this.#step(slot);
  }

  async closeClient(client: number): Promise<void> {
    const slot = this.#slots.get(client);
    if (!slot || slot.closed) return;
    slot.engine.closeAll('client closed');
    this.#step(slot);
    await this.#shutdown(slot);
  }

  async listen(options: EngineServerOptions, tries = TCP_PORT_TRIES): Promise<ServerInfo> {
    const family = ipFamily(options.host);
    if (family === 0) {
      throw new QuicwireError(
        'ERR_INVALID_ARGUMENT',
        `host must be an IP address to listen on (e.g. 127.0.0.1 or ::1), got ${JSON.stringify(options.host)}`,
      );
    }
    if (options.port > 65535) {
      throw new QuicwireError(
        'ERR_INVALID_ARGUMENT',
        `port must be between 0 and 65535, got ${options.port}`,
      );
    }
    const engine = this.#call(() =>
      this.#shell.Engine.server(
        options.cert,
        options.key,
        options.encodings,
        positional(TRANSPORT_OPTIONS, options.transport),
        positional(SERVER_OPTIONS, { ...options, worker: options.worker?.index }),
        options.webTransport && [options.webTransport.path, ...options.webTransport.origins],
      ),
    );
    const slot = this.#add(engine);
    try {
      const { worker } = options;
      const port =
        worker && slot.io.adopt
          ? await slot.io.adopt(worker)
          : await slot.io.socket(family, options.host, options.port);
      if (options.tcp) await slot.tunnels.listen(options.host, port, options);
      return { id: slot.id, host: options.host, port };
    } catch (err) {
      await this.#shutdown(slot);
      // Port 0 picked a free UDP port whose TCP twin is taken (by anyone's connection):
      // another free UDP port, then.
      const taken = (err as { cause?: { code?: unknown } }).cause?.code === 'EADDRINUSE';
      if (taken && options.tcp && options.port === 0 && !options.worker && tries > 1) {
        return this.listen(options, tries - 1);
      }
      throw err;
    }
  }

  bindWorkers(host: string, port: number, count: number): { group: number; port: number } {
    const workers = this.#workers();
    return this.#call(() => workers.bind(host, port, count));
  }

  releaseWorkers(group: number): void {
    this.#workers().release(group);
  }

  #workers(): NonNullable<Shell['workers']> {
    const workers = this.#shell.workers;
    if (!workers) {
      throw new QuicwireError(
        'ERR_BACKEND_UNAVAILABLE',
        `server workers share a UDP port through the native addon; the ${this.name} backend cannot`,
      );
    }
    return workers;
  }

  serverStats(server: number): Omit<ServerStats, 'answersFailed'> {
    return serverStats(this.#figures(this.#slot(server)));
  }

  async closeServer(server: number, graceful: boolean, timeoutMs: number): Promise<void> {
    const slot = this.#slots.get(server);
    if (!slot || slot.closed) return;
    if (graceful) {
      slot.engine.goAway();
      this.#step(slot);
      if (slot.engine.serving() > 0) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, timeoutMs);
          slot.drained = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
    }
    slot.engine.closeAll('server closing');
    this.#step(slot);
    await this.#shutdown(slot);
  }

  generateDevCert(names: string[], validDays?: number): DevCert {
    const c = this.#call(() => this.#shell.generateDevCert(names, validDays));
    return { cert: c.cert, key: c.key, hash: c.hash };
  }

  /** Runs an engine call, turning what it throws into a QuicwireError. */
  #call<T>(f: () => T): T {
    try {
      return f();
    } catch (err) {
      throw fromEngine(err);
    }
  }

  #figures(slot: Slot<E>): EngineFigures {
    return JSON.parse(slot.engine.stats()) as EngineFigures;
  }

  /** One step after the current task for all the writes in it: 64 KiB messages written one
   *  at a time otherwise go out as a full datagram and a small tail each, twice the packets. */
  #stepSoon(slot: Slot<E>): void {
    if (slot.stepSoon) return;
    slot.stepSoon = true;
    soon(() => {
      slot.stepSoon = false;
      this.#step(slot);
    });
  }

  /** A connection's TCP tunnel closed under it (the peer went, or the path broke): it
   *  closes now rather than after its idle timeout. Not a race's tunnel while UDP may still
   *  win it. */
  #tunnelLost(slot: Slot<E>, addr: string): void {
    for (const [id, tunnel] of slot.tunnelOf) {
      if (tunnel !== addr) continue;
      if (slot.carrier === 'auto' && !slot.isConnected(id)) return;
      slot.tunnelOf.delete(id);
      slot.engine.disconnect(id, 'the TCP connection carrying it closed');
      this.#step(slot);
      return;
    }
  }

  /** Sends what the engine has, follows its timer, and reports its events (with `wake`,
   *  waking the hub for them after the current task). */
  #step(slot: Slot<E>, wake = true): void {
    if (slot.closed) return;
    if (slot.io.step() && this.#events(slot, slot.engine.takeEvents()) && wake) this.#notifySoon();
    this.#checkDrained(slot);
  }

  /** Datagrams or a timer moved the engine: its events go to the hub now, not a tick later
   *  (this runs from the event loop, outside any other JS). */
  #afterIo(slot: Slot<E>, events: Float64Array | null | undefined): void {
    if (slot.closed) return;
    this.#events(slot, events);
    this.#checkDrained(slot);
    if (this.#batches.length > 0) this.#notify();
  }

  #checkDrained(slot: Slot<E>): void {
    if (slot.drained && slot.engine.serving() === 0) {
      const done = slot.drained;
      slot.drained = undefined;
      done();
    }
  }

  /** Queues an engine's events, if there are any, for the hub; whether there were. */
  #events(slot: Slot<E>, meta: Float64Array | null | undefined): boolean {
    if (!meta) return false;
    // Small bytes came with the words. Large ones and the large bodies are asked for once
    // an event needs them: every call into an engine costs, more than reading words does.
    const end = meta.byteOffset + meta.byteLength;
    const data = meta.buffer.byteLength > end ? new Uint8Array(meta.buffer, end) : NO_DATA;
    const batch: EventBatch = { data, meta, bodies: NO_BODIES, lent: false };
    const receipts: number[] = [];
    // Large message bodies are lent when this client's or server's handler borrows them;
    // a large body of another event takes them all (each in a buffer of its own).
    const borrows = this.#borrows(slot.id);
    let lend = 0;
    for (let i = 0; i < meta.length; i += EVENT_WORDS) {
      const kind = meta[i] as number;
      const offset = meta[i + 5] as number;
      const id = meta[i + 1] as number;
      if (offset < 0) {
        if (kind === Event.Message && borrows) lend += meta[i + 6] as number;
        else if (batch.bodies === NO_BODIES) batch.bodies = slot.engine.takeEventBodies();
      } else if ((meta[i + 6] as number) > 0 && batch.data === NO_DATA) {
        batch.data = slot.engine.takeEventData();
      }
      if (kind === Event.Receipt) receipts.push(id, meta[i + 2] as number, meta[i + 3] as number);
      // The batch goes to the hub as it is, with the owner filled in.
      if (kind === Event.KeyLog || kind === Event.Qlog) meta[i + 2] = slot.id;
      if (kind === Event.Connection) {
        meta[i + 2] = slot.id; // the owner: this client or server
        const info = connectionInfo(batch, i);
        this.#routes.set(id, slot);
        if (isTunnel(info.peer)) {
          // A server's client over TCP.
          slot.tunnelOf.set(id, info.peer);
          slot.tunnels.bound(info.peer);
        }
        const tunnel = slot.tunnelOf.get(id);
        if (info.carrier === 'udp' && tunnel !== undefined) {
          // UDP won the race: the tunnel (if it opened at all) goes.
          slot.tunnelOf.delete(id);
          slot.tunnels.end(tunnel);
        }
        slot.connected(id, info);
      } else if (kind === Event.Closed) {
        this.#routes.delete(id);
        const tunnel = slot.tunnelOf.get(id);
        if (tunnel !== undefined) {
          slot.tunnelOf.delete(id);
          slot.tunnels.end(tunnel);
        }
        slot.disconnected(
          id,
          () => new QuicwireError(codeOf(meta[i + 3] as number), text.decode(eventBody(batch, i))),
        );
      }
    }
    const lentIn =
      lend > 0 && batch.bodies === NO_BODIES ? this.#lender.lend(slot.engine, batch, lend) : undefined;
    this.#batches.push({ batch, slot, receipts, lentIn });
    return true;
  }

  /** Resolves once the sockets are closed (their ports free for a new server). */
  async #shutdown(slot: Slot<E>): Promise<void> {
    slot.closed = true;
    for (const [id, owner] of this.#routes) if (owner === slot) this.#routes.delete(id);
    // Let the CONNECTION_CLOSE datagrams leave before the sockets go.
    await new Promise((resolve) => setTimeout(resolve, CLOSE_LINGER_MS));
    slot.io.close();
    slot.tunnels.closeAll();
    this.#slots.delete(slot.id);
  }
}
