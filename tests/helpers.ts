// Shared fixtures: a dev certificate, a server with echo handlers, and cleanup.

import type { ChildProcess } from 'node:child_process';
import { afterEach, expect } from 'vitest';
import {
  type Connection,
  generateDevCert,
  initWasm,
  QuicServer,
  QuicTransport,
  QuicwireError,
  type ServerOptions,
  type TransportOptions,
} from '../ts/index.js';
import { lineFrom, type Spawner, spawnFixture } from './fixtures/spawn.js';

// The wasm backend loads asynchronously; with native this resolves at once.
await initWasm();

export const cert = generateDevCert(['localhost', '127.0.0.1', '::1']);

const cleanups: (() => Promise<void>)[] = [];

afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
});

/** A server whose request handler echoes, fails on {fail}, and waits on {sleepMs}. */
export async function echoServer(options: Partial<ServerOptions> = {}): Promise<QuicServer> {
  const server = await QuicServer.listen({ cert: cert.cert, key: cert.key, ...options });
  server.onRequest(async (msg) => {
    const m = msg as { fail?: string; sleepMs?: number };
    if (m && typeof m === 'object' && m.sleepMs) await sleep(m.sleepMs);
    if (m && typeof m === 'object' && m.fail) throw new Error(m.fail);
    return msg;
  });
  cleanups.push(() => server.close({ graceful: false }));
  return server;
}

export function transport(options: TransportOptions = {}): QuicTransport {
  const t = new QuicTransport({ ca: cert.cert, ...options });
  cleanups.push(() => t.close());
  return t;
}

/** An echo server and a client connected to it. */
export async function connectedPair(
  client: TransportOptions = {},
  server: Partial<ServerOptions> = {},
): Promise<{ server: QuicServer; t: QuicTransport; conn: Connection }> {
  const s = await echoServer(server);
  const t = transport(client);
  const conn = await t.connect('127.0.0.1', s.port);
  return { server: s, t, conn };
}

/** A promise that stays pending until `release()`: for handlers held mid-request. */
export function gate(): { held: Promise<void>; release: () => void } {
  let release = () => {};
  const held = new Promise<void>((r) => {
    release = r;
  });
  return { held, release };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Waits until `done()` holds, checking every few ms; fails the test after `limitMs`. */
export async function eventually(done: () => boolean, what: string, limitMs = 10_000): Promise<void> {
  const end = performance.now() + limitMs;
  while (!done()) {
    if (performance.now() > end) throw new Error(`${what}: not within ${limitMs} ms`);
    await sleep(5);
  }
}

/** Asserts `promise` rejects with a QuicwireError of `code`; returns it. */
export async function rejectsWith(promise: Promise<unknown>, code: string): Promise<QuicwireError> {
  const err = await promise.then(
    () => {
      throw new Error(`expected ${code}, but it resolved`);
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(QuicwireError);
  expect((err as QuicwireError).code, (err as Error).message).toBe(code);
  return err as QuicwireError;
}

export function throwsWith(fn: () => unknown, code: string): QuicwireError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(QuicwireError);
    expect((err as QuicwireError).code, (err as Error).message).toBe(code);
    return err as QuicwireError;
  }
  throw new Error(`expected ${code}, but nothing was thrown`);
}

/** The connection still works both ways: a request round trip and a delivered message. */
export async function stillWorks(t: QuicTransport, conn: Connection, server: QuicServer) {
  expect(await t.request(conn, { ok: 1 })).toEqual({ ok: 1 });
  const got = new Promise((resolve) => server.onMessage((m) => resolve(m)));
  await t.send(conn, { still: 'alive' });
  expect(await got).toEqual({ still: 'alive' });
}

/** tests/fixtures/echo-server.ts in its own process; killed after the test. */
export async function serverProcess(
  env: Record<string, string> = {},
  spawner?: Spawner,
): Promise<{ child: ChildProcess; port: number; ca: string }> {
  const child = fixture('echo-server.ts', [], env, spawner);
  return { child, ...JSON.parse(await lineFrom(child)) };
}

/** A fixture script under tests/fixtures/ in its own process; killed after the test. */
export function fixture(
  script: string,
  args: string[],
  env: Record<string, string> = {},
  spawner?: Spawner,
): ChildProcess {
  const child = spawnFixture(script, args, env, spawner);
  cleanups.push(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return child;
}

/** Resolves once `child` has exited. */
export function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}
