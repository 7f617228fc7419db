// What the stress scripts share: the echo server in its own process, and snapshots of a
// process's memory, fds and handles (after a garbage collection) to watch for growth and leaks.

import { readdirSync } from 'node:fs';
import { QuicTransport, QuicwireError } from '../../ts/index.js';
import { lineFrom, spawnFixture } from '../fixtures/spawn.js';

export interface Snapshot {
  rss: number;
  /** V8 heap size (young and old generations): growth here is JavaScript's, not the engine's. */
  heap: number;
  fds: number;
  handles: number;
}

export interface ServerSnapshot extends Snapshot {
  /** Connections open on the server, not counting the probe this snapshot came through. */
  connections: number;
}

export interface StressServer {
  port: number;
  ca: string;
  snapshot(): Promise<ServerSnapshot>;
  stop(): Promise<void>;
}

/** This process, after a collection when run with --expose-gc. */
export function snapshot(): Snapshot {
  globalThis.gc?.();
  return {
    rss: process.memoryUsage().rss,
    heap: process.memoryUsage().heapTotal,
    fds: readdirSync('/proc/self/fd').length,
    handles: process.getActiveResourcesInfo().length,
  };
}

/** V8 grows its young generation in steps under allocation pressure (seen as heapTotal
 *  going 16 -> 24 -> 40 MiB a minute or two into a soak while the live heap stays flat).
 *  Processes whose RSS is watched for growth start with it at full size instead, so V8's
 *  sizing is not taken for a leak. */
export const STEADY_HEAP = ['--min-semi-space-size=16', '--max-semi-space-size=16'];

/** tests/fixtures/echo-server.ts in its own process, taking up to `maxConnections`. */
export async function startServer(maxConnections: number): Promise<StressServer> {
  const child = spawnFixture(
    'echo-server.ts',
    [],
    { QUICWIRE_MAX_CONNECTIONS: String(maxConnections) },
    undefined,
    STEADY_HEAP,
  );
  const { port, ca } = JSON.parse(await lineFrom(child)) as { port: number; ca: string };
  // One connection of its own asks for the server's figures.
  const probe = new QuicTransport({ ca });
  return {
    port,
    ca,
    async snapshot() {
      const s = (await probe.request(`127.0.0.1:${port}`, { op: 'stats' })) as ServerSnapshot;
      return { rss: s.rss, heap: s.heap, fds: s.fds, handles: s.handles, connections: s.connections - 1 };
    },
    async stop() {
      await probe.close();
      child.kill('SIGKILL');
    },
  };
}

/** The first 20 failures, and `fail(what)`: a rejection handler that records one. */
export function failures() {
  const errors: string[] = [];
  const fail = (what: string) => (err: unknown) => {
    if (errors.length < 20) errors.push(`${what}: ${err instanceof QuicwireError ? err.code : ''} ${err}`);
  };
  return { errors, fail };
}

/** Reads `read()` every 100 ms until `settled` holds of it (at most `tries` times); the last value. */
export async function settle<T>(
  read: () => T | Promise<T>,
  settled: (v: T) => boolean,
  tries = 100,
): Promise<T> {
  let v = await read();
  for (let i = 1; i < tries && !settled(v); i++) {
    await new Promise((r) => setTimeout(r, 100));
    v = await read();
  }
  return v;
}

export const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(1);

/** Runs `work(i)` for i < count with at most `width` at once. */
export async function inWaves(count: number, width: number, work: (i: number) => Promise<void>) {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(width, count) }, async () => {
      while (next < count) await work(next++);
    }),
  );
}
