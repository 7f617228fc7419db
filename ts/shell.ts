// The contract between the engine backend (ts/engine-backend.ts) and a shell of the engine:
// the napi addon (ts/native.ts) or the wasm module (ts/wasm.ts). A shell speaks the engine's
// batched layout (ts/layout.ts, generated from quicwire_engine::abi); this file says what it
// offers and turns its positional options and failures into the facade's shapes.

import type { StreamCarrier } from './carrier.js';
import type { WorkerSocket, WriteFailure } from './engine.js';
import { codeOf, QuicwireError } from './errors.js';
import type { WebTransportClientOptions } from './webtransport.js';

/** One endpoint (a client or a server) as both shells expose it. */
export interface ShellEngine {
  /** `tag` 0: the pooled connection to host:port; another: a connection of its own. */
  connect(host: string, port: number, addr: string, tag: number): number;
  connectRacing(
    host: string,
    port: number,
    addr: string,
    fallback: string,
    afterMs: number,
    tag: number,
  ): number;
  /** The pooled connection to host:port, or a new one over a WebTransport session to `url`
   *  (the wasm shell in a browser, see ts/webtransport.ts). */
  connectWeb?(host: string, port: number, url: string, tag: number): number;
  /** Closes a connection; its close error says `reason` when given. */
  disconnect(connection: number, reason?: string): void;
  goAway(): void;
  serving(): number;
  closeAll(reason: string): void;
  stats(): string;
  acknowledge(receipts: Float64Array): void;
  /** Events since the last call, or nothing when there are none. Their bytes, when small,
   *  follow the words in the same buffer (`words.buffer` from `words.byteLength` on). */
  takeEvents(): Float64Array | null | undefined;
  /** The bytes of the last batch when they were too large to travel with its words. */
  takeEventData(): Uint8Array;
  /** The batch's large bodies, which events name by negative offsets. */
  takeEventBodies(): Uint8Array[];
  /** Copies them into `into`, one after another; the bytes they take (when more than
   *  `into` holds, nothing was copied). */
  copyEventBodies(into: Uint8Array): number;
  /** The failed ops, if any: their indices, error code numbers and messages. */
  write(
    data: Uint8Array,
    ops: Float64Array,
  ): { ops: ArrayLike<number>; codes: ArrayLike<number>; messages: string[] } | undefined | null;
}

/** A shell's module: its engine constructors and helpers. */
export interface Shell<E extends ShellEngine = ShellEngine> {
  Engine: {
    client(ca: string | undefined, insecure: boolean, encodings: string[], limits: Float64Array): E;
    server(
      cert: string,
      key: string,
      encodings: string[],
      limits: Float64Array,
      admission: Float64Array,
      /** To accept WebTransport sessions: their path, then the pages' origins allowed. */
      webTransport: string[] | undefined,
    ): E;
  };
  /** A zeroed buffer a message body is sent from without a copy; without it, a plain one. */
  sendBuffer?(size: number): Uint8Array;
  generateDevCert(
    names: string[],
    validDays: number | undefined,
  ): { cert: string; key: string; hash: string };
  poolKey(host: string, port: number): string;
  /** Sockets for servers on worker threads sharing a port (the native shell only). */
  workers?: {
    bind(host: string, port: number, count: number): { group: number; port: number };
    release(group: number): void;
  };
}

/** How one engine meets the network. */
export interface EngineIo {
  /** Binds its socket for an address family (once; later calls get the same); its port. */
  socket(family: 4 | 6, host: string | undefined, port: number): Promise<number>;
  /** Moves its traffic to new sockets (new ports) on the same addresses; its connections
   *  migrate. */
  rebind(): Promise<void>;
  /** Reads a worker's socket bound for it (see `Shell.workers`) instead of binding one; its
   *  port. Only where the shell has `workers`. */
  adopt?(worker: WorkerSocket): Promise<number>;
  /** After every engine call: sends what the engine has and follows its timer; whether
   *  events may wait (false only when the engine said there are none). */
  step(): boolean;
  /** Datagrams that came through the engine's stream tunnels (ts/carrier.ts): `data` back to
   *  back, `lens[i]` bytes each, from `addrs[i]`. */
  carried(data: Uint8Array, lens: Uint32Array, addrs: string[]): void;
  /** Its client's connections ride the browser's WebTransport sessions (the wasm shell). */
  useWebTransport?(options: WebTransportClientOptions): void;
  /** Closes its sockets and timer. */
  close(): void;
}

/** Makes the I/O for an engine; `afterIo` is to be called, outside any other JS call, once
 *  datagrams or a timer moved the engine (and `step` ran), with its events (`takeEvents`).
 *  Datagrams to tunnel addresses go to `tunnels`. */
export type IoFactory<E> = (
  engine: E,
  afterIo: (events: Float64Array | null | undefined) => void,
  tunnels: StreamCarrier,
) => EngineIo;

/** Options as the engine takes them: numbers in the order `names` gives (NaN: the default). */
export function positional<K extends string>(
  names: readonly K[],
  options: { [key in K]?: number | boolean | undefined },
): Float64Array {
  return Float64Array.from(names, (name) => Number(options[name] ?? Number.NaN));
}

/** The failures a shell reported, as QuicwireErrors. */
export function failures(
  failed: ReturnType<ShellEngine['write']>,
  index: (op: number) => number = (op) => op,
): WriteFailure[] {
  if (!failed) return [];
  return Array.from(failed.ops, (op, k) => ({
    op: index(op),
    error: new QuicwireError(codeOf(failed.codes[k] as number), failed.messages[k] as string),
  }));
}
