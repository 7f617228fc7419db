// The wasm backend: the engine from pkg/ (quinn-proto + quicwire-core in WebAssembly),
// driven over the platform's datagram network (UDP in Node, memory in a browser). Every
// datagram received in a tick enters wasm in one call, all transmits come back in one call,
// and one timer follows the engine's next deadline.

import type * as Wasm from '../pkg/quicwire_wasm.js';
import type {
  ConnectionInfo,
  Engine,
  EngineClientOptions,
  EngineServerOptions,
  EngineTransportOptions,
  EventBatch,
  ServerInfo,
  WriteFailure,
} from './engine.js';
import { EVENT_WORDS, Event, eventBody, OP_WORDS } from './engine.js';
import { fromEngine, QuicwireError } from './errors.js';
import {
  type DatagramNetwork,
  type DatagramSocket,
  ipFamily,
  platform,
  soon,
  unref,
  type WasmInput,
} from './platform.js';
import type { ConnectionStats, DevCert, PoolStats, ServerStats } from './types.js';

type WasmModule = typeof Wasm;

/** Connection ids and request handles are `slot * SLOT + local id`, unique per process. */
const SLOT = 2 ** 21;
const text = new TextDecoder();

function limits(t: EngineTransportOptions): Float64Array {
  const v = (x: number | undefined) => x ?? Number.NaN;
  return Float64Array.from([
    v(t.maxMessageSize),
    v(t.maxConcurrentStreams),
    v(t.idleTimeoutMs),
    v(t.connectTimeoutMs),
    v(t.requestTimeoutMs),
    v(t.maxConnections),
    v(t.keepAliveMs),
  ]);
}

interface Waiter {
  resolve(info: ConnectionInfo): void;
  reject(err: QuicwireError): void;
}

/** One wasm engine (a client or a server) with its sockets and timer. */
class Slot {
  /** One socket per address family, bound on first use. */
  readonly sockets: { 4?: Promise<DatagramSocket>; 6?: Promise<DatagramSocket> } = {};
  readonly bound: { 4?: DatagramSocket; 6?: DatagramSocket } = {};
  timer: ReturnType<typeof setTimeout> | undefined;
  readonly inbox: { chunks: Uint8Array[]; lens: number[]; addrs: string[] } = {
    chunks: [],
    lens: [],
    addrs: [],
  };
  receiving = false;
  readonly ready = new Map<number, ConnectionInfo>();
  readonly waiters = new Map<number, Waiter[]>();
  /** Resolved once no request is being served (graceful close). */
  drained: (() => void) | undefined;
  closed = false;

  constructor(
    readonly id: number,
    readonly engine: Wasm.Engine,
  ) {}
}

export class WasmBackend implements Engine {
  readonly name = 'wasm' as const;
  readonly #wasm: WasmModule;
  readonly #network: DatagramNetwork;
  readonly #slots = new Map<number, Slot>();
  #nextSlot = 1;
  #notify: () => void = () => {};
  /** Event batches as the engines produced them, waiting for the hub. */
  #batches: { batch: EventBatch; slot: Slot; receipts: number[] }[] = [];
  /** The batch the hub took last: its messages are acknowledged when it asks again. */
  #handed: { slot: Slot; receipts: number[] } | undefined;
  #notifyScheduled = false;

  constructor(wasm: WasmModule, network: DatagramNetwork) {
    this.#wasm = wasm;
    this.#network = network;
  }

  errorCodes(): string[] {
    return this.#wasm.errorCodes();
  }

  startEvents(notify: () => void): void {
    this.#notify = notify;
  }

  // The hub dispatches a batch before it asks for the next one (and asks until there is
  // none), so asking again means the messages handed before reached the application.
  takeEvents(): EventBatch | null {
    const handed = this.#handed;
    this.#handed = undefined;
    if (handed && handed.receipts.length > 0 && !handed.slot.closed) {
      handed.slot.engine.acknowledge(Float64Array.from(handed.receipts));
      this.#step(handed.slot);
    }
    const next = this.#batches.shift();
    if (!next) return null;
    this.#handed = next;
    return next.batch;
  }

  /** Queues an engine's event batch (ids already made process-wide) and wakes the hub once. */
  #emit(batch: EventBatch, slot: Slot, receipts: number[]): void {
    this.#batches.push({ batch, slot, receipts });
    if (!this.#notifyScheduled) {
      this.#notifyScheduled = true;
      soon(() => {
        this.#notifyScheduled = false;
        this.#notify();
      });
    }
  }

  #slot(id: number): Slot {
    const slot = this.#slots.get(Math.floor(id / SLOT)) ?? this.#slots.get(id);
    if (!slot || slot.closed) throw new QuicwireError('ERR_CONNECTION_CLOSED', 'this endpoint is closed');
    return slot;
  }

  #add(engine: Wasm.Engine): Slot {
    const slot = new Slot(this.#nextSlot++, engine);
    this.#slots.set(slot.id, slot);
    return slot;
  }

  write(data: Uint8Array, ops: Float64Array): WriteFailure[] {
    // A batch almost always belongs to one engine (one client's or server's connections):
    // it then goes over whole, without taking it apart per op.
    let only: Slot | undefined;
    let onlyId = -1;
    for (let i = 1; i < ops.length; i += OP_WORDS) {
      const id = Math.floor((ops[i] as number) / SLOT);
      if (id === onlyId) continue;
      const slot = this.#slots.get(id);
      if (!slot || slot.closed || only) return this.#writeSplit(data, ops);
      only = slot;
      onlyId = id;
    }
    if (!only) return [];
    const local = ops.slice();
    for (let i = 1; i < local.length; i += OP_WORDS) local[i] = (local[i] as number) % SLOT;
    const failed = only.engine.write(data, local);
    this.#step(only);
    return Array.from(failed.ops, (op, k) => ({ op, error: failed.errors[k] as string }));
  }

  /** A batch for several engines (or a closed one): each engine gets its share. */
  #writeSplit(data: Uint8Array, ops: Float64Array): WriteFailure[] {
    const perSlot = new Map<Slot, { ops: number[]; bodies: Uint8Array[]; index: number[] }>();
    const failures: WriteFailure[] = [];
    let offset = 0;
    for (let i = 0, n = 0; i < ops.length; i += OP_WORDS, n++) {
      const [op, target, id, len, extra] = ops.subarray(i, i + OP_WORDS) as unknown as number[];
      const body = data.subarray(offset, offset + (len as number));
      offset += len as number;
      const slot = this.#slots.get(Math.floor((target as number) / SLOT));
      if (!slot || slot.closed) {
        failures.push({ op: n, error: 'ERR_CONNECTION_CLOSED: the connection is closed' });
        continue;
      }
      let batch = perSlot.get(slot);
      if (!batch) {
        batch = { ops: [], bodies: [], index: [] };
        perSlot.set(slot, batch);
      }
      batch.ops.push(op as number, (target as number) % SLOT, id as number, len as number, extra as number);
      batch.bodies.push(body);
      batch.index.push(n);
    }
    for (const [slot, batch] of perSlot) {
      const failed = slot.engine.write(concat(batch.bodies), Float64Array.from(batch.ops));
      failed.ops.forEach((op, k) => {
        failures.push({ op: batch.index[op] as number, error: failed.errors[k] as string });
      });
      this.#step(slot);
    }
    return failures;
  }

  createClient(options: EngineClientOptions): number {
    const engine = this.#call(() =>
      this.#wasm.Engine.client(
        options.ca,
        options.insecure ?? false,
        options.encodings,
        limits(options.transport),
      ),
    );
    return this.#add(engine).id * SLOT;
  }

  async connect(client: number, host: string, port: number): Promise<ConnectionInfo> {
    const slot = this.#slot(client);
    // The pool's rules first: a bad host fails before any DNS lookup.
    this.#call(() => this.#wasm.poolKey(host, port));
    const { address, family } = await this.#network.resolve(host);
    await this.#socket(slot, family);
    const addr = family === 6 ? `[${address}]:${port}` : `${address}:${port}`;
    const local = this.#call(() => slot.engine.connect(host, port, addr));
    this.#step(slot);
    const ready = slot.ready.get(local);
    if (ready) return ready;
    return new Promise((resolve, reject) => {
      const list = slot.waiters.get(local) ?? [];
      list.push({ resolve, reject });
      slot.waiters.set(local, list);
    });
  }

  disconnect(connection: number): void {
    const slot = this.#slots.get(Math.floor(connection / SLOT));
    if (!slot || slot.closed) return;
    slot.engine.disconnect(connection % SLOT);
    this.#step(slot);
  }

  poolStats(client: number): PoolStats {
    const s = this.#stats(this.#slot(client));
    const idle = s.connections.filter((c) => c.idle).length;
    return {
      active: s.connections.length - idle,
      idle,
      created: s.created,
      reused: s.reused,
      evicted: s.evicted,
      failed: s.failed,
      totals: s.totals,
      connections: s.connections.map(({ idle: _, ...c }) => c).sort((a, b) => a.peer.localeCompare(b.peer)),
    };
  }

  async closeClient(client: number): Promise<void> {
    const slot = this.#slots.get(Math.floor(client / SLOT));
    if (!slot || slot.closed) return;
    slot.engine.closeAll('client closed');
    this.#step(slot);
    this.#shutdown(slot);
  }

  async listen(options: EngineServerOptions): Promise<ServerInfo> {
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
      this.#wasm.Engine.server(
        options.cert,
        options.key,
        options.encodings,
        limits(options.transport),
        Float64Array.from([
          options.maxConnections ?? Number.NaN,
          options.maxConnectionsPerIp ?? Number.NaN,
          options.validateAddresses === undefined ? Number.NaN : Number(options.validateAddresses),
        ]),
      ),
    );
    const slot = this.#add(engine);
    const socket = await this.#socket(slot, family, options.host, options.port);
    return { id: slot.id * SLOT, host: options.host, port: socket.port };
  }

  serverStats(server: number): ServerStats {
    const s = this.#stats(this.#slot(server));
    return {
      connections: s.connections.length,
      accepted: s.accepted,
      rejected: s.rejected,
      refused: s.refused,
      totals: s.totals,
    };
  }

  async closeServer(server: number, graceful: boolean, timeoutMs: number): Promise<void> {
    const slot = this.#slots.get(Math.floor(server / SLOT));
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
    this.#shutdown(slot);
  }

  generateDevCert(names: string[]): DevCert {
    const c = this.#call(() => this.#wasm.generateDevCert(names));
    return { cert: c.cert, key: c.key };
  }

  /** Runs an engine call, turning its "ERR_X: message" errors into QuicwireErrors. */
  #call<T>(f: () => T): T {
    try {
      return f();
    } catch (err) {
      throw fromEngine(err);
    }
  }

  #stats(slot: Slot) {
    return JSON.parse(slot.engine.stats()) as {
      created: number;
      reused: number;
      evicted: number;
      failed: number;
      accepted: number;
      rejected: number;
      refused: number;
      totals: ConnectionStats;
      connections: (ConnectionStats & { idle: boolean })[];
    };
  }

  /** The slot's socket for an address family, bound on first use. */
  #socket(slot: Slot, family: 4 | 6, host?: string, port = 0): Promise<DatagramSocket> {
    slot.sockets[family] ??= this.#network
      .bind(family, host, port, (data, from) => {
        slot.inbox.chunks.push(data);
        slot.inbox.lens.push(data.length);
        slot.inbox.addrs.push(from);
        if (!slot.receiving) {
          slot.receiving = true;
          soon(() => this.#receive(slot));
        }
      })
      .then((socket) => {
        slot.bound[family] = socket;
        return socket;
      });
    return slot.sockets[family];
  }

  /** Everything received since the last tick, in one call. */
  #receive(slot: Slot): void {
    slot.receiving = false;
    if (slot.closed) return;
    const { chunks, lens, addrs } = slot.inbox;
    if (lens.length === 0) return;
    const data = concat(chunks);
    slot.inbox.chunks = [];
    slot.inbox.lens = [];
    slot.inbox.addrs = [];
    slot.engine.receive(data, Uint32Array.from(lens), addrs);
    this.#step(slot);
  }

  /** Sends what the engine has, reports its events, and follows its timer. */
  #step(slot: Slot): void {
    if (slot.closed) return;
    const t = slot.engine.transmits();
    const data = t.data;
    const lens = t.lens;
    const addrs = t.addrs;
    let offset = 0;
    for (let i = 0; i < lens.length; i++) {
      const len = lens[i] as number;
      const to = addrs[i] as string;
      slot.bound[to.startsWith('[') ? 6 : 4]?.send(data.subarray(offset, offset + len), to);
      offset += len;
    }
    this.#events(slot);
    clearTimeout(slot.timer);
    const ms = slot.engine.nextTimeoutMs();
    if (ms >= 0) {
      slot.timer = setTimeout(() => {
        if (slot.closed) return;
        slot.engine.onTimeout();
        this.#step(slot);
      }, ms);
      unref(slot.timer);
    }
    if (slot.drained && slot.engine.serving() === 0) {
      const done = slot.drained;
      slot.drained = undefined;
      done();
    }
  }

  #events(slot: Slot): void {
    const meta = slot.engine.takeEvents();
    if (meta.length === 0) return;
    const batch = { data: slot.engine.takeEventData(), meta };
    const base = slot.id * SLOT;
    const receipts: number[] = [];
    for (let i = 0; i < meta.length; i += EVENT_WORDS) {
      const kind = meta[i] as number;
      const local = meta[i + 1] as number;
      if (kind === Event.Receipt) receipts.push(local, meta[i + 2] as number, meta[i + 3] as number);
      // The batch goes to the hub as it is: only the ids change, in place.
      meta[i + 1] = base + local;
      if (kind === Event.Connection) {
        meta[i + 2] = base; // the owner: this client or server
        const [encoding = 'msgpack', peer = ''] = text.decode(eventBody(batch, i)).split(' ');
        const info = { id: base + local, encoding, peer, peerMaxMessageSize: meta[i + 4] as number };
        slot.ready.set(local, info);
        for (const w of slot.waiters.get(local) ?? []) w.resolve(info);
        slot.waiters.delete(local);
      } else if (kind === Event.Closed) {
        slot.ready.delete(local);
        const waiting = slot.waiters.get(local);
        if (waiting) {
          const codes = this.#wasm.errorCodes();
          const code = codes[meta[i + 3] as number] ?? 'ERR_INTERNAL';
          const err = new QuicwireError(code as never, text.decode(eventBody(batch, i)));
          for (const w of waiting) w.reject(err);
          slot.waiters.delete(local);
        }
      } else if (kind === Event.Request) {
        meta[i + 2] = base + (meta[i + 2] as number); // a handle the facade answers with
      }
    }
    this.#emit(batch, slot, receipts);
  }

  #shutdown(slot: Slot): void {
    slot.closed = true;
    clearTimeout(slot.timer);
    // Let the CONNECTION_CLOSE datagrams leave before the sockets go.
    unref(
      setTimeout(() => {
        slot.bound[4]?.close();
        slot.bound[6]?.close();
        this.#slots.delete(slot.id);
      }, 50),
    );
  }
}

function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((a, b) => a + b.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

let loading: Promise<WasmBackend> | undefined;

/** Loads pkg/ once, from `input` (path, URL, bytes or WebAssembly.Module) or its default place. */
export function loadWasm(input?: WasmInput, network?: DatagramNetwork): Promise<WasmBackend> {
  loading ??= (async () => {
    try {
      const wasm = (await import('../pkg/quicwire_wasm.js')) as WasmModule;
      await wasm.default({ module_or_path: await platform().wasmSource(input) });
      return new WasmBackend(wasm, network ?? platform().network);
    } catch (err) {
      loading = undefined;
      throw new QuicwireError('ERR_BACKEND_UNAVAILABLE', `the wasm engine did not load: ${String(err)}`, {
        cause: err,
      });
    }
  })();
  return loading;
}
