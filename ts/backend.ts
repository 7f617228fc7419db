// Backend selection. QUICWIRE_BACKEND=native|wasm (or `initWasm(input, { backend })`) picks
// one. Without a choice the native addon is used, and the wasm engine is the fallback when
// no native binary loads (after `initWasm()`, since loading WebAssembly is asynchronous).

import type { Engine } from './engine.js';
import { QuicwireError } from './errors.js';
import { Hub } from './hub.js';
import { type DatagramNetwork, platform, type WasmInput } from './platform.js';
import { loadWasm, type WasmBackend } from './wasm.js';

type BackendName = 'native' | 'wasm';

let hub: Hub | undefined;
let wasm: WasmBackend | undefined;
/** Chosen with `initWasm(input, { backend })`; wins over QUICWIRE_BACKEND. */
let chosen: BackendName | undefined;

function wanted(): BackendName | undefined {
  if (chosen) return chosen;
  const v = platform().env('QUICWIRE_BACKEND');
  if (v === undefined || v === '') return undefined;
  if (v !== 'native' && v !== 'wasm') {
    throw new QuicwireError('ERR_INVALID_ARGUMENT', `QUICWIRE_BACKEND must be native or wasm, got ${v}`);
  }
  return v;
}

function loadEngine(): Engine {
  const name = wanted();
  if (name === 'wasm') {
    if (!wasm)
      throw new QuicwireError(
        'ERR_NOT_INITIALIZED',
        'the wasm backend is chosen: call `await initWasm()` first',
      );
    return wasm;
  }
  try {
    return platform().loadNative();
  } catch (err) {
    if (name === undefined && wasm) return wasm;
    const hint =
      name === undefined ? '\n  - wasm: not loaded; `await initWasm()` enables it as the fallback' : '';
    throw new QuicwireError('ERR_BACKEND_UNAVAILABLE', `${(err as Error).message}${hint}`, { cause: err });
  }
}

/** The process-wide hub over the selected engine, loaded on first use. */
export function getHub(): Hub {
  hub ??= new Hub(loadEngine());
  return hub;
}

/** Which backend is in use. */
export function backend(): BackendName {
  return getHub().engine.name;
}

export interface InitWasmOptions {
  /** Pick a backend; wins over QUICWIRE_BACKEND. */
  backend?: BackendName;
  /** Where the wasm engine's datagrams go (default: UDP in Node, a MemoryNetwork in browsers). */
  network?: DatagramNetwork;
}

/**
 * Loads the wasm engine when it is (or may become) the backend: always with
 * QUICWIRE_BACKEND=wasm or `{ backend: 'wasm' }`, as the fallback when the native addon does
 * not load, and not at all when native is in use. Idempotent; concurrent calls share one
 * load. `input` is where the .wasm is: a path, URL, bytes or a compiled WebAssembly.Module.
 */
export async function initWasm(input?: WasmInput, options: InitWasmOptions = {}): Promise<void> {
  const pick = options.backend;
  if (pick !== undefined) {
    if (pick !== 'native' && pick !== 'wasm') {
      throw new QuicwireError('ERR_INVALID_ARGUMENT', `backend must be native or wasm, got ${String(pick)}`);
    }
    if (hub && hub.engine.name !== pick) {
      throw new QuicwireError('ERR_INVALID_ARGUMENT', `the ${hub.engine.name} backend is already in use`);
    }
    chosen = pick;
  }
  const name = wanted();
  if (name === 'native') return;
  let nativeError: unknown;
  if (name === undefined) {
    try {
      platform().loadNative();
      return;
    } catch (err) {
      nativeError = err; // No native addon: the wasm engine will serve.
    }
  }
  try {
    wasm ??= await loadWasm(input, options.network);
  } catch (err) {
    if (nativeError === undefined) throw err;
    throw new QuicwireError(
      'ERR_BACKEND_UNAVAILABLE',
      `${(nativeError as Error).message}\n  - wasm: ${(err as Error).message}`,
      { cause: err },
    );
  }
}
