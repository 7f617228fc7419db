// Ids that never collide or run out, and answers that never fail without a word. The long
// haul (npm run longhaul) crosses the old limits for real; these pin the contracts.

import { describe, expect, it } from 'vitest';
import { MemoryNetwork, type QuicwireError } from '../ts/index.js';
import { echoServer, eventually, gate, rejectsWith, sleep, transport } from './helpers.js';

/** Resolves with the first error `onError` hears of. */
function nextError(endpoint: { onError(h: (e: QuicwireError) => void): unknown }): Promise<QuicwireError> {
  return new Promise((resolve) => endpoint.onError((e) => resolve(e)));
}

describe('connection ids', () => {
  it('are never reused, and a closed connection is never reached through an old id', async () => {
    const server = await echoServer();
    const t = transport();
    const ids = new Set<number>();
    let previous: Awaited<ReturnType<typeof t.connect>> | undefined;
    for (let i = 0; i < 100; i++) {
      const conn = await t.connect('127.0.0.1', server.port);
      expect(ids.has(conn.id), `id ${conn.id} came twice`).toBe(false);
      ids.add(conn.id);
      expect(await t.request(conn, i)).toBe(i);
      if (previous) await rejectsWith(t.send(previous, 'stale'), 'ERR_CONNECTION_CLOSED');
      await t.disconnect(conn);
      previous = conn;
    }
    expect(t.getPoolStats().created).toBe(100);
  });

  it('of two clients and a server in one process never collide', async () => {
    const server = await echoServer();
    const a = transport();
    const b = transport();
    const [ca, cb] = await Promise.all([
      a.connect('127.0.0.1', server.port),
      b.connect('127.0.0.1', server.port),
    ]);
    expect(await a.request(ca, 'a')).toBe('a');
    expect(await b.request(cb, 'b')).toBe('b');
    const peers = server.peers().map((p) => p.id);
    expect(peers).toHaveLength(2);
    expect(new Set([ca.id, cb.id, ...peers]).size).toBe(4);
  });
});

describe('an answer that cannot be sent', () => {
  it('is reported when the requester has disconnected', async () => {
    const server = await echoServer();
    const { held, release } = gate();
    server.onRequest(async (m) => {
      await held;
      return m;
    });
    const failed = nextError(server);
    const t = transport();
    const conn = await t.connect('127.0.0.1', server.port);
    const pending = t.request(conn, 'late');
    pending.catch(() => {});
    await eventually(() => server.stats().totals.requestsIn > 0, 'the request reached the server');
    await t.disconnect(conn);
    await eventually(() => server.peers().length === 0, 'the server saw the disconnect');
    release();
    const err = await failed;
    expect(err.code).toBe('ERR_CONNECTION_CLOSED');
    expect(server.stats().answersFailed).toBe(1);
  });

  it('is reported when the requester stopped waiting', async () => {
    const server = await echoServer();
    const failed = nextError(server);
    const t = transport();
    const conn = await t.connect('127.0.0.1', server.port);
    await rejectsWith(t.request(conn, { sleepMs: 300 }, { timeoutMs: 50 }), 'ERR_TIMEOUT');
    const err = await failed;
    expect(err.code).toBe('ERR_STREAM_RESET');
    expect(err.message).toMatch(/stopped waiting/);
    expect(server.stats().answersFailed).toBe(1);
    // The connection is unharmed.
    expect(await t.request(conn, 'after')).toBe('after');
  });

  it('is a process warning, once, when nobody listens', async () => {
    const server = await echoServer();
    const warnings: Error[] = [];
    const onWarning = (w: Error & { code?: string }) => {
      if (w.code === 'QUICWIRE_ANSWER_FAILED') warnings.push(w);
    };
    process.on('warning', onWarning);
    try {
      const t = transport();
      const conn = await t.connect('127.0.0.1', server.port);
      for (let i = 0; i < 2; i++) {
        await rejectsWith(t.request(conn, { sleepMs: 150 }, { timeoutMs: 20 }), 'ERR_TIMEOUT');
      }
      await eventually(() => server.stats().answersFailed >= 2, 'both answers failed');
      await sleep(10);
      expect(warnings).toHaveLength(1);
      expect(warnings[0]?.message).toMatch(/could not be sent/);
    } finally {
      process.off('warning', onWarning);
    }
  });
});

describe('MemoryNetwork ports', () => {
  it('come back once closed, past the 16,384 dynamic ports, and run out with a clear error', async () => {
    const net = new MemoryNetwork();
    const noop = () => {};
    for (let i = 0; i < 20_000; i++) {
      const socket = await net.bind(4, undefined, 0, noop);
      expect(socket.port).toBeGreaterThanOrEqual(49152);
      expect(socket.port).toBeLessThanOrEqual(65535);
      socket.close();
    }
    const held = [];
    for (let i = 0; i < 65536 - 49152; i++) held.push(await net.bind(4, undefined, 0, noop));
    expect(new Set(held.map((s) => s.port)).size).toBe(held.length);
    await rejectsWith(net.bind(4, undefined, 0, noop), 'ERR_IO');
    held[7]?.close();
    expect((await net.bind(4, undefined, 0, noop)).port).toBe(held[7]?.port);
  });
});
