// The wasm backend: the engine from pkg/ (crates/quicwire-wasm) driven over the platform's
// datagram network (UDP in Node, memory in a browser) and the network's clock. Every
// datagram received in a tick enters wasm in one call, all transmits come back in one call,
// and one timer follows the engine's next deadline.

import type * as Wasm from '../pkg/quicwire_wasm.js';
import { concat } from './bytes.js';
import { isTunnel, type StreamCarrier } from './carrier.js';
import { EngineBackend } from './engine-backend.js';
import { QuicwireError } from './errors.js';
import {
  type Clock,
  type DatagramNetwork,
  type DatagramSocket,
  platform,
  realClock,
  soon,
  type WasmInput,
} from './platform.js';
import type { EngineIo, Shell, ShellEngine } from './shell.js';
import {
  type WebCommandEntry,
  type WebTransportClientOptions,
  WebTransportSessions,
} from './webtransport.js';

type WasmModule = typeof Wasm;

/** A wasm engine as the shared engine API, with the time from its network's clock. */
class WasmEngine implements ShellEngine {
  constructor(
    readonly raw: Wasm.Engine,
    readonly clock: Clock,
  ) {}
  connect(host: string, port: number, addr: string, tag: number): number {
    return this.raw.connect(this.clock.now(), host, port, addr, tag);
  }
  connectRacing(
    host: string,
    port: number,
    addr: string,
    fallback: string,
    afterMs: number,
    tag: number,
  ): number {
    return this.raw.connectRacing(this.clock.now(), host, port, addr, fallback, afterMs, tag);
  }
  connectWeb(host: string, port: number, url: string, tag: number): number {
    return this.raw.connectWeb(this.clock.now(), host, port, url, tag);
  }
  disconnect(connection: number, reason?: string): void {
    this.raw.disconnect(this.clock.now(), connection, reason);
  }
  goAway(): void {
    this.raw.goAway(this.clock.now());
  }
  serving(): number {
    return this.raw.serving();
  }
  closeAll(reason: string): void {
    this.raw.closeAll(this.clock.now(), reason);
  }
  stats(): string {
    return this.raw.stats();
  }
  acknowledge(receipts: Float64Array): void {
    this.raw.acknowledge(this.clock.now(), receipts);
  }
  takeEvents(): Float64Array | undefined {
    return this.raw.takeEvents();
  }
  takeEventData(): Uint8Array {
    return this.raw.takeEventData();
  }
  takeEventBodies(): Uint8Array[] {
    return this.raw.takeEventBodies();
  }
  copyEventBodies(into: Uint8Array): number {
    return this.raw.copyEventBodies(into);
  }
  write(data: Uint8Array, ops: Float64Array): ReturnType<ShellEngine['write']> {
    return this.raw.write(this.clock.now(), data, ops);
  }
}

/** The wasm module as a shell of the shared engine backend, on `clock`. */
function shell(wasm: WasmModule, clock: Clock): Shell<WasmEngine> {
  return {
    Engine: {
      client: (...args) => new WasmEngine(wasm.Engine.client(clock.now(), ...args), clock),
      server: (...args) => new WasmEngine(wasm.Engine.server(clock.now(), ...args), clock),
    },
    generateDevCert: (names, validDays) => wasm.generateDevCert(names, validDays),
    poolKey: (host, port) => wasm.poolKey(host, port),
  };
}

/** One wasm engine's sockets (one per address family, bound on first use) and timer. */
class JsIo implements EngineIo {
  readonly #sockets: { 4?: Promise<DatagramSocket>; 6?: Promise<DatagramSocket> } = {};
  readonly #bound: { 4?: DatagramSocket; 6?: DatagramSocket } = {};
  /** The host each family's socket was bound on (a rebind binds there again). */
  readonly #hosts: { 4?: string | undefined; 6?: string | undefined } = {};
  readonly #clock: Clock;
  #timer: unknown;
  #inbox: { chunks: Uint8Array[]; lens: number[]; addrs: string[] } = { chunks: [], lens: [], addrs: [] };
  #receiving = false;
  #closed = false;
  /** A client's WebTransport sessions (`transport: 'webtransport'`). */
  #web: WebTransportSessions | undefined;
  #webMoved = false;

  constructor(
    readonly engine: WasmEngine,
    readonly network: DatagramNetwork,
    readonly afterIo: (events: Float64Array | null | undefined) => void,
    readonly tunnels: StreamCarrier,
  ) {
    this.#clock = engine.clock;
  }

  async socket(family: 4 | 6, host: string | undefined, port: number): Promise<number> {
    if (!this.#sockets[family]) {
      this.#hosts[family] = host;
      this.#sockets[family] = this.network.bind(family, host, port, this.#arrived).then((socket) => {
        this.#bound[family] = socket;
        return socket;
      });
    }
    return (await this.#sockets[family]).port;
  }

  async rebind(): Promise<void> {
    for (const family of [4, 6] as const) {
      const old = this.#bound[family];
      if (!old) continue;
      const socket = await this.network.bind(family, this.#hosts[family], 0, this.#arrived);
      this.#sockets[family] = Promise.resolve(socket);
      this.#bound[family] = socket;
      old.close();
    }
  }

  readonly #arrived = (data: Uint8Array, from: string): void => {
    const inbox = this.#inbox;
    inbox.chunks.push(data);
    inbox.lens.push(data.length);
    inbox.addrs.push(from);
    if (!this.#receiving) {
      this.#receiving = true;
      soon(() => this.#receive());
    }
  };

  /** Everything received since the last tick, in one call. */
  #receive(): void {
    this.#receiving = false;
    const { chunks, lens, addrs } = this.#inbox;
    if (this.#closed || lens.length === 0) return;
    this.#inbox = { chunks: [], lens: [], addrs: [] };
    // Traffic streaming in: its ACKs first, if the engine says so (as in the native driver).
    const now = this.#clock.now();
    if (this.engine.raw.receive(now, concat(chunks), Uint32Array.from(lens), addrs)) this.step();
    this.#afterIo();
  }

  carried(data: Uint8Array, lens: Uint32Array, addrs: string[]): void {
    if (this.#closed) return;
    if (this.engine.raw.receive(this.#clock.now(), data, lens, addrs)) this.step();
    this.#afterIo();
  }

  /** The application first, the socket after its microtasks: what it answers at once leaves
   *  with the ACKs and stream credit owed, in one datagram (its write steps already). */
  #afterIo(): void {
    this.afterIo(this.engine.takeEvents());
    soon(() => this.step());
  }

  step(): boolean {
    if (this.#closed) return false;
    const clock = this.#clock;
    const { data, lens, addrs } = this.engine.raw.transmits(clock.now());
    let offset = 0;
    for (let i = 0; i < lens.length; i++) {
      const len = lens[i] as number;
      const to = addrs[i] as string;
      const datagram = data.subarray(offset, offset + len);
      if (!to.startsWith('[')) this.#bound[4]?.send(datagram, to);
      else if (isTunnel(to)) this.tunnels.send(to, datagram);
      else this.#bound[6]?.send(datagram, to);
      offset += len;
    }
    if (this.#web) this.#web.run(this.engine.raw.webCommands(clock.now()) as WebCommandEntry[]);
    clock.clearTimeout(this.#timer);
    const deadline = this.engine.raw.nextDeadlineMs();
    if (deadline >= 0) {
      this.#timer = clock.setTimeout(() => {
        if (this.#closed) return;
        this.engine.raw.onTimeout(clock.now());
        this.#afterIo();
      }, deadline - clock.now());
    }
    return true;
  }

  useWebTransport(options: WebTransportClientOptions): void {
    const raw = this.engine.raw;
    const clock = this.#clock;
    // What the browser did moves the engine; its events and commands go once per tick.
    const moved = <T>(result: T): T => {
      if (!this.#webMoved) {
        this.#webMoved = true;
        soon(() => {
          this.#webMoved = false;
          if (!this.#closed) this.#afterIo();
        });
      }
      return result;
    };
    this.#web = new WebTransportSessions(options, {
      ready: (conn, max) => moved(raw.webReady(clock.now(), conn, max)),
      incoming: (conn, bidi) => moved(raw.webIncoming(clock.now(), conn, bidi)),
      data: (conn, stream, data, fin) => moved(raw.webData(clock.now(), conn, stream, data, fin)),
      reset: (conn, stream, code) => moved(raw.webReset(clock.now(), conn, stream, code)),
      stopped: (conn, stream, code) => moved(raw.webStopped(clock.now(), conn, stream, code)),
      datagram: (conn, data) => moved(raw.webDatagram(clock.now(), conn, data)),
      closed: (conn, reason) => moved(raw.webClosed(clock.now(), conn, reason)),
    });
  }

  close(): void {
    this.#web?.closeAll();
    this.#closed = true;
    this.#clock.clearTimeout(this.#timer);
    this.#bound[4]?.close();
    this.#bound[6]?.close();
  }
}

export type WasmBackend = EngineBackend<WasmEngine>;

let loading: Promise<WasmBackend> | undefined;

/** Loads pkg/ once, from `input` (path, URL, bytes or WebAssembly.Module) or its default place. */
export function loadWasm(input?: WasmInput, network?: DatagramNetwork): Promise<WasmBackend> {
  loading ??= (async () => {
    try {
      const wasm = (await import('../pkg/quicwire_wasm.js')) as WasmModule;
      await wasm.default({ module_or_path: await platform().wasmSource(input) });
      const net = network ?? platform().network;
      return new EngineBackend<WasmEngine>(
        'wasm',
        shell(wasm, net.clock ?? realClock),
        (engine, afterIo, tunnels) => new JsIo(engine, net, afterIo, tunnels),
        (host) => net.resolve(host),
      );
    } catch (err) {
      loading = undefined;
      throw new QuicwireError('ERR_BACKEND_UNAVAILABLE', `the wasm engine did not load: ${String(err)}`, {
        cause: err,
      });
    }
  })();
  return loading;
}
