// The wasm backend: the engine from pkg/ (crates/quicwire-wasm) driven over the platform's
// datagram network (UDP in Node, memory in a browser) and its timers. Every datagram
// received in a tick enters wasm in one call, all transmits come back in one call, and one
// timer follows the engine's next deadline.

import type * as Wasm from '../pkg/quicwire_wasm.js';
import { concat, EngineBackend, type EngineIo, type Shell } from './engine-backend.js';
import { QuicwireError } from './errors.js';
import {
  type DatagramNetwork,
  type DatagramSocket,
  platform,
  soon,
  unref,
  type WasmInput,
} from './platform.js';

type WasmModule = typeof Wasm;

/** One wasm engine's sockets (one per address family, bound on first use) and timer. */
class JsIo implements EngineIo {
  readonly #sockets: { 4?: Promise<DatagramSocket>; 6?: Promise<DatagramSocket> } = {};
  readonly #bound: { 4?: DatagramSocket; 6?: DatagramSocket } = {};
  #timer: ReturnType<typeof setTimeout> | undefined;
  #inbox: { chunks: Uint8Array[]; lens: number[]; addrs: string[] } = { chunks: [], lens: [], addrs: [] };
  #receiving = false;
  #closed = false;

  constructor(
    readonly engine: Wasm.Engine,
    readonly network: DatagramNetwork,
    readonly afterIo: (events: Float64Array | null | undefined) => void,
  ) {}

  async socket(family: 4 | 6, host: string | undefined, port: number): Promise<number> {
    this.#sockets[family] ??= this.network
      .bind(family, host, port, (data, from) => {
        const inbox = this.#inbox;
        inbox.chunks.push(data);
        inbox.lens.push(data.length);
        inbox.addrs.push(from);
        if (!this.#receiving) {
          this.#receiving = true;
          soon(() => this.#receive());
        }
      })
      .then((socket) => {
        this.#bound[family] = socket;
        return socket;
      });
    return (await this.#sockets[family]).port;
  }

  /** Everything received since the last tick, in one call. */
  #receive(): void {
    this.#receiving = false;
    const { chunks, lens, addrs } = this.#inbox;
    if (this.#closed || lens.length === 0) return;
    this.#inbox = { chunks: [], lens: [], addrs: [] };
    // Traffic streaming in: its ACKs first, if the engine says so (as in the native driver).
    if (this.engine.receive(concat(chunks), Uint32Array.from(lens), addrs)) this.step();
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
    const { data, lens, addrs } = this.engine.transmits();
    let offset = 0;
    for (let i = 0; i < lens.length; i++) {
      const len = lens[i] as number;
      const to = addrs[i] as string;
      this.#bound[to.startsWith('[') ? 6 : 4]?.send(data.subarray(offset, offset + len), to);
      offset += len;
    }
    clearTimeout(this.#timer);
    const ms = this.engine.nextTimeoutMs();
    if (ms >= 0) {
      this.#timer = setTimeout(() => {
        if (this.#closed) return;
        this.engine.onTimeout();
        this.#afterIo();
      }, ms);
      unref(this.#timer);
    }
    return true;
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#bound[4]?.close();
    this.#bound[6]?.close();
  }
}

export type WasmBackend = EngineBackend<Wasm.Engine>;

let loading: Promise<WasmBackend> | undefined;

/** Loads pkg/ once, from `input` (path, URL, bytes or WebAssembly.Module) or its default place. */
export function loadWasm(input?: WasmInput, network?: DatagramNetwork): Promise<WasmBackend> {
  loading ??= (async () => {
    try {
      const wasm = (await import('../pkg/quicwire_wasm.js')) as WasmModule;
      await wasm.default({ module_or_path: await platform().wasmSource(input) });
      const net = network ?? platform().network;
      return new EngineBackend<Wasm.Engine>(
        'wasm',
        wasm as unknown as Shell<Wasm.Engine>,
        (engine, afterIo) => new JsIo(engine, net, afterIo),
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
