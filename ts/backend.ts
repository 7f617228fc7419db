// Backend selection. Native (the napi addon) is the default; the wasm engine is the next
// backend (QUICWIRE_BACKEND=wasm selects it once built).

import type { Engine } from './engine.js';
import { QuicwireError } from './errors.js';
import { Hub } from './hub.js';
import { loadNative } from './native.js';

let hub: Hub | undefined;

function loadEngine(): Engine {
  const wanted = process.env.QUICWIRE_BACKEND ?? 'native';
  if (wanted !== 'native') {
    throw new QuicwireError(
      'ERR_BACKEND_UNAVAILABLE',
      `QUICWIRE_BACKEND=${wanted}: this build has only the native backend`,
    );
  }
  return loadNative();
}

/** The process-wide hub over the selected engine, loaded on first use. */
export function getHub(): Hub {
  hub ??= new Hub(loadEngine());
  return hub;
}

/** Which backend is in use: 'native' (or 'wasm'). */
export function backend(): 'native' | 'wasm' {
  return getHub().engine.name;
}

/** Prepares the wasm backend; with the native backend it resolves at once. Idempotent. */
export async function initWasm(_input?: unknown): Promise<void> {
  getHub();
}
