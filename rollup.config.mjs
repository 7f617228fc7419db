// The browser / edge bundle: dist/browser/quicwire.js (ESM, one file) with the engine's
// .wasm beside it as a separate asset. Input is tsc's output, so `npm run build:ts` first.
import { readFileSync } from 'node:fs';
import { nodeResolve } from '@rollup/plugin-node-resolve';

/** Emits pkg/'s .wasm next to the bundle, where ts/browser.ts looks for it by default. */
function wasmAsset() {
  return {
    name: 'quicwire-wasm-asset',
    generateBundle() {
      this.emitFile({
        type: 'asset',
        fileName: 'quicwire_wasm_bg.wasm',
        source: readFileSync('pkg/quicwire_wasm_bg.wasm'),
      });
    },
  };
}

export default {
  input: 'dist/browser.js',
  output: {
    file: 'dist/browser/quicwire.js',
    format: 'es',
    sourcemap: true,
    // The engine glue is imported lazily by initWasm; one file is simpler to ship.
    inlineDynamicImports: true,
  },
  // A bus cluster talks to NATS over TCP, which pages cannot: `nats` stays out, and
  // asking for a cluster there is ERR_BACKEND_UNAVAILABLE.
  external: ['nats'],
  plugins: [nodeResolve({ browser: true, preferBuiltins: false }), wasmAsset()],
};
