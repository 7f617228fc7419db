// What quicwire needs from the runtime it runs in. Node (ts/node.ts) brings UDP sockets, the
// native addon and the .wasm from disk; a browser or edge runtime (ts/browser.ts) brings an
// in-memory datagram network and fetches the .wasm. Everything else is the same code.

import type { StreamNetwork } from './carrier.js';
import type { Engine } from './engine.js';
import type { OpenTelemetryApi } from './tracing.js';

/** A bound datagram socket. Addresses are `ip:port`, or `[ipv6]:port`. */
export interface DatagramSocket {
  readonly port: number;
  send(data: Uint8Array, to: string): void;
  close(): void;
}

/** A monotonic clock in milliseconds and timers on it: the runtime's, or a `ManualClock`. */
export interface Clock {
  now(): number;
  setTimeout(f: () => void, ms: number): unknown;
  clearTimeout(timer: unknown): void;
}

/** The runtime's own clock. Its timers do not keep a Node process alive. */
export const realClock: Clock = {
  now: () => performance.now(),
  setTimeout: (f, ms) => {
    // Deno and Bun warn of a negative delay (a deadline just passed); Node takes it as 1 ms.
    const timer = setTimeout(f, Math.max(0, ms));
    unref(timer);
    return timer;
  },
  clearTimeout: (timer) => clearTimeout(timer as ReturnType<typeof setTimeout>),
};

/** Where the wasm engine's datagrams go: UDP in Node, memory (or your own carrier) elsewhere. */
export interface DatagramNetwork {
  /** The clock the engines on this network run on (default: the runtime's). */
  readonly clock?: Clock;
  /** An IP address for a host name (IP literals come back as they are). */
  resolve(host: string): Promise<{ address: string; family: 4 | 6 }>;
  /** Binds `host:port` (port 0: any free port); `receive` is called once per datagram. */
  bind(
    family: 4 | 6,
    host: string | undefined,
    port: number,
    receive: (data: Uint8Array, from: string) => void,
  ): Promise<DatagramSocket>;
}

export type WasmInput = string | URL | BufferSource | WebAssembly.Module;

export interface Platform {
  /** The napi addon, or throws saying what it tried. */
  loadNative(): Engine;
  network: DatagramNetwork;
  /** TCP, to carry QUIC where UDP is blocked (ts/carrier.ts); none in browsers. */
  streams?: StreamNetwork;
  /** The .wasm as bytes or a module, from what the user passed to `initWasm` (or nothing). */
  wasmSource(input: WasmInput | undefined): Promise<BufferSource | WebAssembly.Module | URL>;
  /** An environment variable, where the runtime has them. */
  env(name: string): string | undefined;
  warn(message: string, code: string): void;
  /** @opentelemetry/api, for the `tracing` option; throws when it is not installed. */
  openTelemetry(): OpenTelemetryApi;
}

let current: Platform | undefined;

/** Set once by the entry point (ts/index.ts or ts/browser.ts). */
export function usePlatform(platform: Platform): void {
  current ??= platform;
}

export function platform(): Platform {
  if (!current) throw new Error('quicwire: no platform: import quicwire from its package entry point');
  return current;
}

/** Runs `f` after the current task, before timers: setImmediate where it exists. */
export const soon: (f: () => void) => void =
  typeof setImmediate === 'function'
    ? (f) => {
        setImmediate(f);
      }
    : (() => {
        // Browsers: a MessageChannel message is a macrotask without setTimeout's 4 ms clamp.
        const queue: (() => void)[] = [];
        const channel = new MessageChannel();
        channel.port1.onmessage = () => {
          const run = queue.splice(0);
          for (const f of run) f();
        };
        return (f) => {
          if (queue.push(f) === 1) channel.port2.postMessage(null);
        };
      })();

/** `host` as a URL's host: an IPv6 literal in brackets. */
export function urlHost(host: string): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
}

/** 4 for a dotted IPv4 literal, 6 for an IPv6 literal (brackets allowed), 0 for a name. */
export function ipFamily(host: string): 0 | 4 | 6 {
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(host)) return 4;
  if (host.replace(/^\[|\]$/g, '').includes(':')) return 6;
  return 0;
}

/** Timers keep a Node process alive unless told not to; browsers have nothing to unref. */
export function unref(timer: unknown): void {
  (timer as { unref?: () => void }).unref?.();
}
