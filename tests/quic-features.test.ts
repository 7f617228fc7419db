// QUIC's own powers beyond streams, on every backend: congestion controllers, the path
// figures a connection reports, and unreliable datagrams.

import { describe, expect, it } from 'vitest';
import { backend, type CongestionControl } from '../ts/index.js';
import { echoServer, eventually, rejectsWith, sleep, throwsWith, transport } from './helpers.js';

describe('congestion control and path stats', () => {
  it.each<CongestionControl>(['cubic', 'newreno', 'bbr'])('runs %s and reports the path', async (cc) => {
    const server = await echoServer({ congestionControl: cc });
    const t = transport({ congestionControl: cc, encoding: 'raw' });
    const conn = await t.connect('127.0.0.1', server.port);
    const body = new Uint8Array(64 * 1024).fill(7);
    const answers = await Promise.all(Array.from({ length: 32 }, () => t.request(conn, body)));
    expect(answers.every((a) => (a as Uint8Array).length === body.length)).toBe(true);

    const s = t.getPoolStats().connections[0];
    expect(s).toBeDefined();
    if (!s) return;
    expect(s.congestionControl).toBe(cc);
    expect(s.cwnd).toBeGreaterThan(0);
    // On loopback datagrams are sized for its 64 KiB MTU.
    expect(s.mtu).toBeGreaterThan(1200);
    expect(s.minRttMs).toBeGreaterThan(0);
    expect(s.minRttMs).toBeLessThanOrEqual(s.rttMs);
    expect(s.congestionEvents).toBeGreaterThanOrEqual(0);
    expect(s.lostBytes).toBeGreaterThanOrEqual(0);
    expect(s.udpTx).toBeGreaterThan(32);
    expect(server.stats().totals.congestionControl).toBe(cc);
  });

  it('rejects an unknown controller', () => {
    for (const bad of ['reno', '', 3, null]) {
      const make = () => transport({ congestionControl: bad as unknown as CongestionControl });
      expect(make).toThrowError(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }));
    }
  });
});

describe('unreliable datagrams', () => {
  it('cross both ways, are counted, and never block the connection', async () => {
    const server = await echoServer();
    const atServer: number[] = [];
    server.onDatagram((d, peer) => {
      atServer.push(d[0] as number);
      // Back to the client, on the same connection.
      void peer.sendDatagram(d);
    });
    const t = transport();
    const back: number[] = [];
    t.onDatagram((d) => back.push(d[0] as number));
    const conn = await t.connect('127.0.0.1', server.port);
    expect(conn.maxDatagramSize).toBeGreaterThan(1200);
    for (let i = 0; i < 100; i++) await t.sendDatagram(conn, new Uint8Array(200).fill(i));
    // A request after them: its answer comes once they have had time to arrive.
    expect(await t.request(conn, 'after')).toBe('after');
    await eventually(() => back.length === 100, 'the datagrams echoed back');
    expect(atServer).toEqual(Array.from({ length: 100 }, (_, i) => i));
    expect(back).toEqual(atServer);
    const s = t.getPoolStats().connections[0];
    expect(s).toMatchObject({ datagramsOut: 100, datagramsIn: 100, datagramsDropped: 0, datagramsLost: 0 });
    expect(s?.maxDatagramSize).toBe(conn.maxDatagramSize);
    expect(server.stats().totals).toMatchObject({ datagramsOut: 100, datagramsIn: 100 });
  });

  it('rejects what is not bytes or too large, and the connection carries on', async () => {
    const server = await echoServer();
    const t = transport();
    const conn = await t.connect('127.0.0.1', server.port);
    await rejectsWith(conn.sendDatagram('text' as unknown as Uint8Array), 'ERR_INVALID_ARGUMENT');
    await rejectsWith(conn.sendDatagram(new Uint8Array(conn.maxDatagramSize + 1)), 'ERR_MESSAGE_TOO_LARGE');
    await conn.sendDatagram(new Uint8Array(conn.maxDatagramSize));
    expect(await conn.request({ still: 'here' })).toEqual({ still: 'here' });
    conn.close();
    await rejectsWith(conn.sendDatagram(new Uint8Array(1)), 'ERR_CONNECTION_CLOSED');
  });
});

describe('TLS key log', () => {
  it('gives both sides the same secrets, as SSLKEYLOGFILE lines', async () => {
    const atServer: string[] = [];
    const atClient: string[] = [];
    const server = await echoServer({ keyLog: (line) => atServer.push(line) });
    const t = transport({ keyLog: (line) => atClient.push(line) });
    expect(await t.request(`127.0.0.1:${server.port}`, 'hi')).toBe('hi');
    const labels = new Set(atClient.map((l) => l.split(' ')[0]));
    for (const label of [
      'CLIENT_HANDSHAKE_TRAFFIC_SECRET',
      'SERVER_HANDSHAKE_TRAFFIC_SECRET',
      'CLIENT_TRAFFIC_SECRET_0',
      'SERVER_TRAFFIC_SECRET_0',
    ]) {
      expect(labels).toContain(label);
    }
    for (const line of atClient) expect(line).toMatch(/^[A-Z_0-9]+ [0-9a-f]{64} [0-9a-f]{64,96}$/);
    expect([...atServer].sort()).toEqual([...atClient].sort());
  });

  it('takes only a function', () => {
    expect(() => transport({ keyLog: 'keys.log' as unknown as () => void })).toThrowError(
      expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }),
    );
  });
});

describe('qlog', () => {
  it('traces each connection (native); the wasm backend says it cannot', async () => {
    const none = () => {};
    if (backend() === 'wasm') {
      const unavailable = expect.objectContaining({ code: 'ERR_BACKEND_UNAVAILABLE' });
      expect(() => transport({ qlog: none })).toThrowError(unavailable);
      await rejectsWith(echoServer({ qlog: none }), 'ERR_BACKEND_UNAVAILABLE');
      return;
    }
    const traces = new Map<number, string>();
    const add = (records: string, id: number) => traces.set(id, (traces.get(id) ?? '') + records);
    let serverRecords = '';
    const server = await echoServer({
      qlog: (records) => {
        serverRecords += records;
      },
    });
    const t = transport({ qlog: add });
    const conn = await t.connect('127.0.0.1', server.port);
    expect(await t.request(conn, 'traced')).toBe('traced');
    const parsed = () =>
      (traces.get(conn.id) ?? '')
        .split('\x1e')
        .filter((r) => r.length > 0)
        .map((r) => JSON.parse(r) as { name?: string; qlog_version?: string });
    const oneRtt = (name: string) =>
      parsed().some((r) => r.name === name && JSON.stringify(r).includes('1RTT'));
    await eventually(
      () => oneRtt('transport:packet_sent') && oneRtt('transport:packet_received'),
      'a trace of 1-RTT packets both ways',
    );
    expect(parsed()[0]?.qlog_version).toBeDefined();
    expect([...traces.keys()]).toEqual([conn.id]);
    expect(serverRecords).toContain('transport:packet_received');
  });
});

describe('request priority', () => {
  it('takes a 32-bit integer, and only that', async () => {
    const server = await echoServer();
    const t = transport();
    const conn = await t.connect('127.0.0.1', server.port);
    expect(await t.request(conn, 'first', { priority: 7 })).toBe('first');
    expect(await conn.request('low', { priority: -5 })).toBe('low');
    for (const bad of [1.5, 2 ** 31, Number.NaN, '1']) {
      await rejectsWith(t.request(conn, 'x', { priority: bad as number }), 'ERR_INVALID_ARGUMENT');
    }
    expect(await t.request(conn, 'still fine')).toBe('still fine');
  });
});

describe('message lanes', () => {
  it('keep order within a lane, resolve each on its own, and refuse a lane too many', async () => {
    const server = await echoServer();
    const got: [number, number][] = [];
    server.onMessage((m) => got.push(m as [number, number]));
    const t = transport();
    const conn = await t.connect('127.0.0.1', server.port);
    const lanes = [0, 5, -5, 1, 2, 3, 4, 2 ** 31 - 1];
    await Promise.all(
      lanes.map((p) =>
        conn.sendBatch(
          [0, 1, 2, 3].map((i) => [p, i]),
          { priority: p },
        ),
      ),
    );
    await t.send(conn, [5, 4], { priority: 5 });
    for (const p of lanes) {
      const order = got.filter(([lane]) => lane === p).map(([, i]) => i);
      expect(order).toEqual(p === 5 ? [0, 1, 2, 3, 4] : [0, 1, 2, 3]);
    }
    // A ninth priority would open a ninth lane.
    await rejectsWith(conn.send('one lane too many', { priority: 99 }), 'ERR_INVALID_ARGUMENT');
    for (const bad of [1.5, 2 ** 31, Number.NaN, '1']) {
      await rejectsWith(conn.send('x', { priority: bad as number }), 'ERR_INVALID_ARGUMENT');
    }
    // Every lane goes on working, and so does the connection.
    await Promise.all(lanes.map((p) => conn.send([p, 9], { priority: p })));
    expect(got.filter(([, i]) => i === 9)).toHaveLength(lanes.length);
    expect(await t.request(conn, 'still fine')).toBe('still fine');
  });
});

describe('0-RTT', () => {
  /** A server with 0-RTT on that answers with whether the request came early. */
  async function earlyServer(port = 0) {
    const server = await echoServer({ earlyData: true, port });
    server.onRequest((m, _conn, info) => ({ m, early: info.early }));
    return server;
  }

  /** A client with 0-RTT on, holding a session of `port`'s server and its settings. */
  async function resumingClient(port: number) {
    const t = transport({ earlyData: true });
    const first = await t.connect('127.0.0.1', port);
    expect(await t.request(first, 'hello')).toEqual({ m: 'hello', early: false });
    await sleep(50); // The session tickets come after the handshake.
    await t.disconnect(first);
    return t;
  }

  it('sends idempotent requests with the first packet, and the rest after the handshake', async () => {
    const server = await earlyServer();
    const t = await resumingClient(server.port);
    const conn = await t.connect('127.0.0.1', server.port);
    const [safe, plain] = await Promise.all([
      t.request(conn, 'safe', { idempotent: true }),
      t.request(conn, 'plain'),
    ]);
    expect(safe).toEqual({ m: 'safe', early: true });
    expect(plain).toEqual({ m: 'plain', early: false });
    await rejectsWith(t.send(conn, 'x', { idempotent: 1 as unknown as boolean }), 'ERR_INVALID_ARGUMENT');
    const mine = t.getPoolStats().connections.find((c) => c.zeroRttAccepted === 1);
    expect(mine?.zeroRttRejected).toBe(0);
    expect(server.stats().totals.zeroRttAccepted).toBe(1);
  });

  it('sends idempotent messages with the first packet, and keeps each lane in order', async () => {
    const server = await earlyServer();
    const t = await resumingClient(server.port);
    const conn = await t.connect('127.0.0.1', server.port);
    const got: unknown[] = [];
    server.onMessage((m, _conn, info) => got.push([m, info.early]));
    await Promise.all([
      t.send(conn, 'first', { idempotent: true }),
      t.send(conn, 'second'),
      t.sendBatch(conn, ['third', 'fourth'], { idempotent: true }),
    ]);
    // In order; only the first went as 0-RTT data: the rest queued behind 'second'.
    expect(got).toEqual([
      ['first', true],
      ['second', false],
      ['third', false],
      ['fourth', false],
    ]);
  });

  it('sends it all again when the server turns 0-RTT down (a restarted server)', async () => {
    const first = await earlyServer();
    const port = first.port;
    const t = await resumingClient(port);
    await first.close({ graceful: false });
    // A new server on the same port knows nothing of the session: it turns 0-RTT down.
    const server = await earlyServer(port);
    const conn = await t.connect('127.0.0.1', port);
    const answers = await Promise.all(
      Array.from({ length: 20 }, (_, i) => t.request(conn, i, { idempotent: true })),
    );
    expect(answers).toEqual(Array.from({ length: 20 }, (_, i) => ({ m: i, early: false })));
    expect(t.getPoolStats().totals.zeroRttRejected).toBe(1);
    expect(server.stats().totals.requestsIn).toBe(20); // each once
  });

  it('takes only booleans', async () => {
    for (const bad of ['yes', 1, null]) {
      throwsWith(() => transport({ earlyData: bad as unknown as boolean }), 'ERR_INVALID_ARGUMENT');
    }
    const server = await echoServer();
    const t = transport();
    const conn = await t.connect('127.0.0.1', server.port);
    await rejectsWith(
      t.request(conn, 'x', { idempotent: 'yes' as unknown as boolean }),
      'ERR_INVALID_ARGUMENT',
    );
    // Without 0-RTT on both ends it is an ordinary request.
    expect(await t.request(conn, 'y', { idempotent: true })).toBe('y');
  });
});

describe('connection migration', () => {
  it('rebind() mid-traffic loses nothing and fails nothing', async () => {
    const server = await echoServer();
    const got: unknown[] = [];
    server.onMessage((m) => got.push(m));
    const t = transport();
    const conn = await t.connect('127.0.0.1', server.port);
    expect(await t.request(conn, 'first')).toBe('first');
    const messages = Array.from({ length: 10_000 }, (_, i) => i);
    const sending = t.sendBatch(conn, messages);
    const asking = Array.from({ length: 1_000 }, (_, i) => t.request(conn, i));
    await t.rebind();
    await sending;
    expect(await Promise.all(asking)).toEqual(Array.from({ length: 1_000 }, (_, i) => i));
    expect(got).toEqual(messages);
    expect(conn.isOpen).toBe(true);
    // And again, on the path it moved to.
    await t.rebind();
    expect(await t.request(conn, 'after')).toBe('after');
    await t.close();
    await rejectsWith(t.rebind(), 'ERR_CONNECTION_CLOSED');
  });
});
