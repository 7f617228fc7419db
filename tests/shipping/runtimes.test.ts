// Deno and Bun, installed from npm as dev dependencies, each run a quicwire client against a
// server in Node and a quicwire server that a Node client talks to. Neither runtime has
// enough of libuv for the native addon, so both run the wasm engine over their node:dgram.

import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { initWasm, QuicTransport } from '../../ts/index.js';
import { exchange, HEALTHY } from '../fixtures/exchange.js';
import { lineFrom } from '../fixtures/spawn.js';
import { serverProcess } from '../helpers.js';

const root = new URL('../..', import.meta.url).pathname;
/** How each runtime runs a TypeScript file whose imports name `.js` files, as ours do. */
const RUNTIMES = {
  deno: ['run', '--allow-all', '--sloppy-imports', '--quiet'],
  bun: ['run'],
} as const;

const children: ChildProcess[] = [];
afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null) child.kill('SIGKILL');
});

/** `script` (under tests/fixtures/) run by `name`, with its first line of output parsed. */
async function run(
  name: keyof typeof RUNTIMES,
  script: string,
  args: string[],
  env: Record<string, string> = {},
) {
  const bin = `${root}node_modules/.bin/${name}`;
  if (!existsSync(bin)) throw new Error(`${bin} is missing: npm install puts it there`);
  const child = spawn(bin, [...RUNTIMES[name], `${root}tests/fixtures/${script}`, ...args], {
    cwd: root,
    env: { ...process.env, ...env, NO_COLOR: '1' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  return { child, first: JSON.parse(await lineFrom(child)) as Record<string, unknown> };
}

for (const name of Object.keys(RUNTIMES) as (keyof typeof RUNTIMES)[]) {
  describe(name, () => {
    it(`a ${name} client exchanges messages and requests with a server in Node`, async () => {
      const server = await serverProcess();
      const { first } = await run(name, 'exchange-client.ts', [String(server.port)], {
        QUICWIRE_CA: server.ca,
      });
      expect(first).toEqual({ runtime: name, backend: 'wasm', ...HEALTHY });
    });

    it(`a client in Node exchanges messages and requests with a ${name} server`, async () => {
      const { first } = await run(name, 'echo-server.ts', []);
      expect(first).toMatchObject({ runtime: name, backend: 'wasm' });
      await initWasm();
      const t = new QuicTransport({ ca: first.ca as string, maxMessageSize: 16 << 20 });
      try {
        expect(await exchange(t, first.port as number)).toEqual(HEALTHY);
      } finally {
        await t.close();
      }
    });

    it(`asked for the native backend, ${name} gets a typed error that says why`, async () => {
      const server = await serverProcess();
      const { first } = await run(name, 'exchange-client.ts', [String(server.port)], {
        QUICWIRE_CA: server.ca,
        QUICWIRE_BACKEND: 'native',
      });
      expect(first).toMatchObject({ runtime: name, error: 'ERR_BACKEND_UNAVAILABLE' });
      expect(first.message).toMatch(/libuv.*initWasm/s);
    });
  });
}
