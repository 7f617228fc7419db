// quicwire for browsers and edge runtimes: the wasm engine only. They have no UDP, so
// datagrams travel over a MemoryNetwork by default (engines in the same page or worker), or
// over any carrier you pass as `initWasm(url, { network })`. Built by rollup into
// dist/browser/ with the .wasm beside the bundle.

import { QuicwireError } from './errors.js';
import { MemoryNetwork } from './memory.js';
import { type Platform, usePlatform } from './platform.js';

const browserPlatform: Platform = {
  loadNative() {
    throw new QuicwireError(
      'ERR_BACKEND_UNAVAILABLE',
      'this runtime has no native addon: call `await initWasm()` to use the wasm engine',
    );
  },
  network: new MemoryNetwork(),
  async wasmSource(input) {
    return input ?? new URL('./quicwire_wasm_bg.wasm', import.meta.url);
  },
  env: () => undefined,
  warn: (message) => console.warn(message),
};

usePlatform(browserPlatform);

export * from './api.js';
