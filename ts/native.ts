// The native backend: the napi addon built from crates/quicwire-node, the same engine as
// the wasm one compiled natively, which reads its UDP socket and runs its timer on Node's
// own event loop (crates/quicwire-node/src/driver.rs). Its generated loader (index.cjs)
// looks for a local build next to itself (a source checkout), then for the platform package
// (quicwire-linux-x64-gnu and friends, installed as optional dependencies); libc is read
// from /usr/bin/ldd before falling back to process.report.

import { createRequire } from 'node:module';
import type * as AddonModule from '../crates/quicwire-node/index.js';
import type { StreamCarrier } from './carrier.js';
import type { Engine, WorkerSocket } from './engine.js';
import { EngineBackend } from './engine-backend.js';
import { fromEngine, QuicwireError } from './errors.js';
import { platform } from './platform.js';
import type { EngineIo, Shell, ShellEngine } from './shell.js';

/** The addon's exports, as napi-rs generated them: the engine API as functions over an
 *  engine handle, plus its own socket and timer. */
type Addon = typeof AddonModule;

/** Engines not shut down yet. Node runs its loop once more while it tears down, after the
 *  last JavaScript ran: an engine's timer firing then would call into a context that is
 *  gone and crash the process, so whatever is still open shuts down on 'exit'. */
const live = new Set<NativeEngine>();

function shutdownAll(): void {
  for (const engine of live) engine.shutdown();
}

/** An addon engine as the shared engine API (methods), plus its own socket and timer. */
class NativeEngine implements ShellEngine {
  constructor(
    readonly addon: Addon,
    readonly handle: number,
  ) {
    if (live.size === 0) process.once('exit', shutdownAll);
    live.add(this);
  }
  bind(host: string, port: number, onEvents: (events: Float64Array | null | undefined) => void): number {
    return this.addon.bind(this.handle, host, port, onEvents);
  }
  adopt(worker: WorkerSocket, onEvents: (events: Float64Array | null | undefined) => void): number {
    return this.addon.adopt(this.handle, worker.group, worker.index, onEvents);
  }
  /** Flags: 1 events wait, 2 datagrams for tunnels wait. */
  flush(): number {
    return this.addon.flush(this.handle);
  }
  rebind(): void {
    this.addon.rebind(this.handle);
  }
  carry(onCarried: () => void): void {
    this.addon.carry(this.handle, onCarried);
  }
  carryIn(data: Uint8Array, lens: Uint32Array, addrs: string[]): boolean {
    return this.addon.carryIn(this.handle, data, lens, addrs);
  }
  takeCarried(): { data: Uint8Array; lens: number[]; addrs: string[] } | null {
    return this.addon.takeCarried(this.handle);
  }
  shutdown(): void {
    live.delete(this);
    if (live.size === 0) process.off('exit', shutdownAll);
    this.addon.shutdown(this.handle);
  }
  connect(host: string, port: number, addr: string, tag: number): number {
    return this.addon.connect(this.handle, host, port, addr, tag);
  }
  connectRacing(
    host: string,
    port: number,
    addr: string,
    fallback: string,
    afterMs: number,
    tag: number,
  ): number {
    return this.addon.connectRacing(this.handle, host, port, addr, fallback, afterMs, tag);
  }
  disconnect(connection: number, reason?: string): void {
    this.addon.disconnect(this.handle, connection, reason);
  }
  goAway(): void {
    this.addon.goAway(this.handle);
  }
  serving(): number {
    return this.addon.serving(this.handle);
  }
  closeAll(reason: string): void {
    this.addon.closeAll(this.handle, reason);
  }
  stats(): string {
    return this.addon.stats(this.handle);
  }
  acknowledge(receipts: Float64Array): void {
    this.addon.acknowledge(this.handle, receipts);
  }
  takeEvents(): Float64Array | null {
    return this.addon.takeEvents(this.handle);
  }
  takeEventData(): Uint8Array {
    return this.addon.takeEventData(this.handle);
  }
  takeEventBodies(): Uint8Array[] {
    return this.addon.takeEventBodies(this.handle);
  }
  copyEventBodies(into: Uint8Array): number {
    return this.addon.copyEventBodies(this.handle, into);
  }
  write(data: Uint8Array, ops: Float64Array): ReturnType<ShellEngine['write']> {
    return this.addon.write(this.handle, data, ops);
  }
}

/** The addon as a shell of the shared engine backend. */
function shell(addon: Addon): Shell<NativeEngine> {
  return {
    Engine: {
      client: (...args) => new NativeEngine(addon, addon.createClient(...args)),
      server: (...args) => new NativeEngine(addon, addon.createServer(...args)),
    },
    sendBuffer: (size) => addon.sendBuffer(size),
    generateDevCert: (names, validDays) => addon.generateDevCert(names, validDays),
    poolKey: (host, port) => addon.poolKey(host, port),
    workers: {
      bind: (host, port, count) => addon.bindWorkers(host, port, count),
      release: (group) => addon.releaseWorkers(group),
    },
  };
}

/** What `flush` says waits: events, and datagrams for stream tunnels. */
const EVENTS = 1;
const CARRIED = 2;

/** The engine does its own I/O: this binds its sockets and tells it when to send. */
class NativeIo implements EngineIo {
  readonly #ports: { 4?: number; 6?: number } = {};

  constructor(
    readonly engine: NativeEngine,
    readonly afterIo: (events: Float64Array | null | undefined) => void,
    readonly tunnels: StreamCarrier,
  ) {
    // After a JS call `flush` says when datagrams for tunnels wait; after the event loop
    // moved the engine (a timer, say), the driver calls this.
    engine.carry(() => this.#sendCarried());
  }

  async socket(family: 4 | 6, host: string | undefined, port: number): Promise<number> {
    if (this.#ports[family] === undefined) {
      try {
        this.#ports[family] = this.engine.bind(host ?? (family === 6 ? '::' : '0.0.0.0'), port, this.afterIo);
      } catch (err) {
        throw fromEngine(err);
      }
    }
    return this.#ports[family] as number;
  }

  async adopt(worker: WorkerSocket): Promise<number> {
    try {
      return this.engine.adopt(worker, this.afterIo);
    } catch (err) {
      throw fromEngine(err);
    }
  }

  async rebind(): Promise<void> {
    try {
      this.engine.rebind();
    } catch (err) {
      throw fromEngine(err);
    }
  }

  step(): boolean {
    const waiting = this.engine.flush();
    if (waiting & CARRIED) this.#sendCarried();
    return (waiting & EVENTS) !== 0;
  }

  carried(data: Uint8Array, lens: Uint32Array, addrs: string[]): void {
    if (this.engine.carryIn(data, lens, addrs)) this.step();
    this.afterIo(this.engine.takeEvents());
    this.step();
  }

  /** What the engine has for tunnels, into them. */
  #sendCarried(): void {
    const out = this.engine.takeCarried();
    if (!out) return;
    let offset = 0;
    for (let i = 0; i < out.lens.length; i++) {
      const len = out.lens[i] as number;
      this.tunnels.send(out.addrs[i] as string, out.data.subarray(offset, offset + len));
      offset += len;
    }
  }

  close(): void {
    this.engine.shutdown();
  }
}

let loaded: Engine | undefined;

/** A runtime that loads Node addons but has libuv only in part, named with its version. The
 *  addon's driver polls its UDP sockets on libuv (crates/quicwire-node/src/uv.rs): Bun has no
 *  `uv_poll_init_socket`, and under Deno's the connection goes silent and the runtime panics at exit. */
function partialLibuv(): string | undefined {
  const { bun, deno } = process.versions as { bun?: string; deno?: string };
  return bun ? `Bun ${bun}` : deno ? `Deno ${deno}` : undefined;
}

/** Loads the addon, or throws ERR_BACKEND_UNAVAILABLE saying everything it tried. */
export function loadNative(): Engine {
  if (loaded) return loaded;
  const runtime = partialLibuv();
  if (runtime) {
    throw new QuicwireError(
      'ERR_BACKEND_UNAVAILABLE',
      `the native addon runs on Node's libuv event loop, which ${runtime} provides only in part; ` +
        'the wasm engine serves here: `await initWasm()`',
    );
  }
  const require = createRequire(import.meta.url);
  let addon: Addon;
  try {
    addon = require('../crates/quicwire-node/index.cjs') as Addon;
  } catch (err) {
    const tried = attempts(err);
    throw new QuicwireError(
      'ERR_BACKEND_UNAVAILABLE',
      `no native quicwire addon loaded for ${process.platform}-${process.arch}; tried:\n` +
        tried.map((t) => `  - ${t}`).join('\n'),
      { cause: err },
    );
  }
  loaded = new EngineBackend<NativeEngine>(
    'native',
    shell(addon),
    (engine, afterIo, tunnels) => new NativeIo(engine, afterIo, tunnels),
    (host) => platform().network.resolve(host),
  );
  return loaded;
}

/** The loader's error and its cause chain (one entry per candidate it tried), oldest first. */
function attempts(err: unknown): string[] {
  const out: string[] = [];
  let e: unknown = err;
  while (e instanceof Error && out.length < 20) {
    out.push(e.message.split('\n')[0] as string);
    e = e.cause;
  }
  const [summary, ...causes] = out;
  return causes.length > 0 ? causes.reverse() : [summary ?? String(err)];
}
