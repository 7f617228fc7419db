import { describe, expect, it } from 'vitest';
import { echoServer, rejectsWith, sleep, transport } from './helpers.js';

describe('connection pool', () => {
  it('reuses a live connection: a second connect creates nothing', async () => {
    const server = await echoServer();
    const t = transport();
    const a = await t.connect('127.0.0.1', server.port);
    const b = await t.connect('127.0.0.1', server.port);
    expect(b).toBe(a);
    const s = t.getPoolStats();
    expect(s.created).toBe(1);
    expect(s.reused).toBe(1);
    expect(s.idle + s.active).toBe(1);
    expect(s.connections[0]?.peer).toBe(`127.0.0.1:${server.port}`);
  });

  it('shares one handshake among concurrent connects', async () => {
    const server = await echoServer();
    const t = transport();
    const conns = await Promise.all(Array.from({ length: 20 }, () => t.connect('127.0.0.1', server.port)));
    expect(new Set(conns).size).toBe(1);
    expect(t.getPoolStats().created).toBe(1);
    // The server counts a connection once the client's HELLO arrives, half a round trip
    // after connect resolved: a request's answer comes after it.
    expect(await t.request(conns[0] as NonNullable<(typeof conns)[0]>, 'x')).toBe('x');
    expect(server.stats().accepted).toBe(1);
  });

  it('evicts idle connections after idleTimeoutMs', async () => {
    const server = await echoServer();
    const t = transport({ idleTimeoutMs: 100 });
    const conn = await t.connect('127.0.0.1', server.port);
    await sleep(500);
    expect(conn.isOpen).toBe(false);
    const s = t.getPoolStats();
    expect(s.evicted).toBe(1);
    expect(s.idle + s.active).toBe(0);
    // The next use dials again.
    expect(await t.request(`127.0.0.1:${server.port}`, 'back')).toBe('back');
    expect(t.getPoolStats().created).toBe(2);
  });

  it('enforces maxConnections: evicts the LRU idle one, else ERR_POOL_EXHAUSTED', async () => {
    const servers = await Promise.all([echoServer(), echoServer(), echoServer()]);
    const t = transport({ maxConnections: 2 });
    const a = await t.connect('127.0.0.1', servers[0]?.port as number);
    const b = await t.connect('127.0.0.1', servers[1]?.port as number);
    const c = await t.connect('127.0.0.1', servers[2]?.port as number);
    await sleep(50);
    expect(a.isOpen).toBe(false);
    expect(t.getPoolStats().evicted).toBe(1);
    const busy = [t.request(b, { sleepMs: 400 }), t.request(c, { sleepMs: 400 })];
    await sleep(50);
    await rejectsWith(t.connect('127.0.0.1', servers[0]?.port as number), 'ERR_POOL_EXHAUSTED');
    await Promise.all(busy);
  });

  it('disconnect closes and forgets; the next connect dials again', async () => {
    const server = await echoServer();
    const t = transport();
    const conn = await t.connect('127.0.0.1', server.port);
    await t.disconnect(conn);
    await rejectsWith(t.send(conn, 'x'), 'ERR_CONNECTION_CLOSED');
    const again = await t.connect('127.0.0.1', server.port);
    expect(again).not.toBe(conn);
    expect(await t.request(again, 'ok')).toBe('ok');
  });

  it('graceful server close lets in-flight requests finish', async () => {
    const server = await echoServer();
    const t = transport();
    const conn = await t.connect('127.0.0.1', server.port);
    const pending = t.request(conn, { sleepMs: 300, n: 1 });
    await sleep(50);
    await server.close({ graceful: true, timeoutMs: 5000 });
    expect(await pending).toEqual({ sleepMs: 300, n: 1 });
    await rejectsWith(t.request(conn, 'late'), 'ERR_CONNECTION_CLOSED');
  });
});
