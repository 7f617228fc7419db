// Short forms of the stress scripts (tests/stress/; the long forms are `npm run load` and
// `npm run soak`): load from many connections and many idle ones held, and a soak with
// connections made and dropped all along. Each fails on any error, on an idle connection
// lost, on RSS growing after warm-up, or on anything left open at the end.

import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { runLoad } from './stress/load.js';
import { STEADY_HEAP } from './stress/process.js';
import type { SoakResult } from './stress/soak.js';

describe('stress (short forms)', () => {
  it('load: 100 connections × 10 requests in flight, then 500 idle connections held', async () => {
    const result = await runLoad({
      connections: 100,
      concurrent: 10,
      requests: 10,
      idle: 500,
      holdSeconds: 5,
      log: console.log,
    });
    expect(result.errors).toEqual([]);
    expect(result.requests).toBe(100 * 10 * 10);
    expect(result.idleHeld).toBe(500);
    expect(result.leftOpen).toBe(0);
  }, 120_000);

  it('soak: mixed traffic and connection churn; RSS flat after warm-up, nothing left open', async () => {
    // Its own process, so V8's young generation can be fixed (STEADY_HEAP) as in npm run soak.
    // Two minutes, the second judged: the client's RSS climbs for about the first (README).
    const script = fileURLToPath(new URL('stress/soak.ts', import.meta.url));
    const child = spawn(
      process.execPath,
      [
        '--expose-gc',
        ...STEADY_HEAP,
        '--import',
        'tsx',
        script,
        '--seconds',
        '120',
        '--cycles',
        '2000',
        '--warmup',
        '0.5',
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const lines: string[] = [];
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
      console.log(line);
      lines.push(line);
    });
    await new Promise((resolve) => child.once('exit', resolve));
    const result = JSON.parse(lines.find((l) => l.startsWith('{')) ?? 'null') as SoakResult;
    expect(result.errors).toEqual([]);
    expect(result.cycles).toBeGreaterThanOrEqual(2000);
    // Nothing more open than at the start (fewer is fine: a timer of the start may be gone).
    for (const [what, extra] of Object.entries(result.leaked)) expect(extra, what).toBeLessThanOrEqual(0);
    expect(result.serverGrowth).toBeLessThan(0.05);
    expect(result.clientGrowth).toBeLessThan(0.05);
    expect(child.exitCode).toBe(0);
  }, 240_000);
});
