import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

// One project per backend: the same suites run against each (QUICWIRE_BACKEND picks it).
const backends = (process.env.QUICWIRE_BACKENDS ?? 'native,wasm').split(',');

export default defineConfig({
  // Examples import the package by name, as users do.
  resolve: { alias: { quicwire: fileURLToPath(new URL('./ts/index.ts', import.meta.url)) } },
  test: {
    // Under CI a JSON report too: .ci/run prints its totals as a plain summary line.
    reporters: process.env.CI
      ? ['default', ['json', { outputFile: 'target/vitest-report.json' }]]
      : ['default'],
    projects: [
      ...backends.map((backend) => ({
        extends: true,
        test: {
          name: backend,
          include: ['tests/*.test.ts'],
          // The engine-level wasm tests drive pkg/ directly (against the native server).
          exclude: backend === 'native' ? [] : ['tests/wasm-engine.test.ts'],
          env: { QUICWIRE_BACKEND: backend },
          pool: 'forks',
          // Tests of memory lent across the JS/engine boundary collect garbage on purpose.
          execArgv: ['--expose-gc'],
          testTimeout: 30_000,
          hookTimeout: 30_000,
        },
      })),
      // What users install and run (browser bundle, CLI, examples): once, on the default backend.
      {
        extends: true,
        test: {
          name: 'shipping',
          include: ['tests/shipping/*.test.ts'],
          pool: 'forks',
          testTimeout: 60_000,
          hookTimeout: 60_000,
        },
      },
    ],
  },
});
