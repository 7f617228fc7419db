import { describe, expect, it } from 'vitest';
import { decode, encode } from '../ts/codec.js';
import { allocSendBuffer, backend, type Connection, initWasm, type QuicwireError } from '../ts/index.js';
import { lineFrom } from './fixtures/spawn.js';
import { connectedPair, echoServer, eventually, fixture, gate, rejectsWith, transport } from './helpers.js';

/** An echo server and a raw-encoding client connected to it, both taking bodies up to `max`. */
function rawPair(max: number) {
  return connectedPair({ encoding: 'raw', maxMessageSize: max }, { maxMessageSize: max });
}

/** Message k of a run: 64 KiB of k. */
const chunk = (k: number) => new Uint8Array(65_536).fill(k);
const isChunk = (b: Uint8Array, k: number) => b.length === 65_536 && b.every((x) => x === k);

describe('messaging', () => {
  it('runs on the selected backend', async () => {
    await Promise.all([initWasm(), initWasm()]);
    expect(backend()).toBe(process.env.QUICWIRE_BACKEND);
    // The option names the backend too; asking for the other one once in use is an error.
    await initWasm(undefined, { backend: backend() });
    const other = backend() === 'native' ? 'wasm' : 'native';
    await rejectsWith(initWasm(undefined, { backend: other }), 'ERR_INVALID_ARGUMENT');
  });

  it('delivers messages in order; send resolves once the server has them', async () => {
    const server = await echoServer();
    const got: unknown[] = [];
    server.onMessage((m) => got.push(m));
    const t = transport();
    const conn = await t.connect('127.0.0.1', server.port);
    expect(conn.encoding).toBe('msgpack');
    await t.send(conn, { type: 'task', id: 1 });
    expect(got).toEqual([{ type: 'task', id: 1 }]);
    const batch = Array.from({ length: 500 }, (_, i) => ({ i }));
    await t.sendBatch(conn, batch);
    expect(got.slice(1)).toEqual(batch);
    await t.send(`127.0.0.1:${server.port}`, 'by key');
    expect(got.at(-1)).toBe('by key');
  });

  it('sends unconfirmed messages in order with the rest; their ACK comes late, but comes', async () => {
    const server = await echoServer();
    const got: unknown[] = [];
    server.onMessage((m) => got.push(m));
    const t = transport();
    const conn = await t.connect('127.0.0.1', server.port);
    // Every other one unconfirmed: the last is confirmed, so all have arrived once it resolves.
    const sends = Array.from({ length: 100 }, (_, i) => t.send(conn, { i }, { unconfirmed: i % 2 === 0 }));
    await Promise.all(sends);
    expect(got).toEqual(Array.from({ length: 100 }, (_, i) => ({ i })));
    await t.sendBatch(conn, ['fire', 'and', 'forget'], { unconfirmed: true });
    await eventually(() => got.length === 103, 'the unconfirmed batch');
    expect(got.slice(100)).toEqual(['fire', 'and', 'forget']);
    // The server acknowledges them on its own, later: nothing stays in flight.
    await eventually(() => t.getPoolStats().idle === 1, 'the late ACK');
    await rejectsWith(t.send(conn, 1, { unconfirmed: 'yes' as never }), 'ERR_INVALID_ARGUMENT');
  });

  it('answers requests, and a thousand at once on one connection', async () => {
    const server = await echoServer();
    const t = transport();
    const conn = await t.connect('127.0.0.1', server.port);
    expect(await t.request(conn, { op: 'sum', args: [1, 2] })).toEqual({ op: 'sum', args: [1, 2] });
    const replies = await Promise.all(Array.from({ length: 1000 }, (_, i) => t.request(conn, { i })));
    expect(replies).toEqual(Array.from({ length: 1000 }, (_, i) => ({ i })));
    const stats = t.getPoolStats();
    expect(stats.created).toBe(1);
    expect(stats.totals.requestsOut).toBe(1001);
  });

  it('aborts a request with its signal: ERR_ABORTED at once, its stream reset', async () => {
    const server = await echoServer();
    const { held, release } = gate();
    let started = 0;
    const heard: string[] = [];
    server.onRequest(async (m, _peer, info) => {
      started++;
      info.signal.addEventListener('abort', () => heard.push((info.signal.reason as QuicwireError).code));
      if (m === 'slow') await held;
      return m;
    });
    const failed: string[] = [];
    server.onError((e) => failed.push(e.code));
    const t = transport();
    const conn = await t.connect('127.0.0.1', server.port);
    // Aborted before it starts: it never leaves.
    const early = new AbortController();
    early.abort(new Error('not wanted'));
    const gone = await rejectsWith(t.request(conn, 'slow', { signal: early.signal }), 'ERR_ABORTED');
    expect((gone.cause as Error).message).toBe('not wanted');
    // Aborted while the peer works on it: rejected at once, the peer's late answer dropped.
    const c = new AbortController();
    const pending = t.request(conn, 'slow', { signal: c.signal });
    await eventually(() => started === 1, 'the request reached the server');
    c.abort();
    await rejectsWith(pending, 'ERR_ABORTED');
    // The handler hears it through its signal, while it still works.
    await eventually(() => heard.length === 1, "the handler's signal aborts");
    expect(heard).toEqual(['ERR_ABORTED']);
    // A request sent after it comes back once the server has read the reset too.
    expect(await t.request(conn, 'fast')).toBe('fast');
    release();
    // The server learns it: its late answer finds the stream reset.
    await eventually(() => failed.length === 1, 'the answer failed');
    expect(failed).toEqual(['ERR_STREAM_RESET']);
    // A signal that never fires leaves the request alone, and the connection is fine.
    const idle = new AbortController();
    expect(await t.request(conn, 'fast', { signal: idle.signal })).toBe('fast');
    idle.abort();
    expect(await t.request(conn, 'after')).toBe('after');
    await rejectsWith(
      t.request(conn, 'x', { signal: 'no' as unknown as AbortSignal }),
      'ERR_INVALID_ARGUMENT',
    );
  });

  it("a handler's signal aborts when its connection closes", async () => {
    const server = await echoServer();
    const reasons: string[] = [];
    server.onRequest((_m, _peer, info) => {
      info.signal.addEventListener('abort', () => reasons.push((info.signal.reason as QuicwireError).code));
      return new Promise(() => {});
    });
    const t = transport();
    const conn = await t.connect('127.0.0.1', server.port);
    const pending = t.request(conn, 'never');
    await eventually(() => server.stats().totals.requestsIn === 1, 'the request reached the server');
    await t.disconnect(conn);
    await rejectsWith(pending, 'ERR_CONNECTION_CLOSED');
    await eventually(() => reasons.length === 1, 'the signal aborts');
    expect(reasons).toEqual(['ERR_CONNECTION_CLOSED']);
  });

  it('a handler that throws: the error is uncaught, the batch and the connection go on', async () => {
    const child = fixture('throwing-handler.ts', [], { QUICWIRE_BACKEND: backend() });
    const out = JSON.parse(await lineFrom(child)) as { got: number[]; errors: string[]; reply: unknown };
    expect(out.got).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(out.errors).toEqual(['handler failed on 3']);
    expect(out.reply).toBe('after');
  });

  it('lets the server send, request and broadcast to its clients', async () => {
    const server = await echoServer();
    const seen: Connection[] = [];
    server.onConnection((p) => seen.push(p));
    const a = transport().onRequest((m) => ({ answeredBy: 'a', m }));
    const b = transport();
    const ca = await a.connect('127.0.0.1', server.port);
    await eventually(() => seen.length >= 1, 'the first message');
    const cb = await b.connect('127.0.0.1', server.port);
    await eventually(() => seen.length >= 2, 'the second message');
    const [peerA, peerB] = seen as [Connection, Connection];
    expect(server.peers()).toHaveLength(2);
    await server.broadcast({ hello: 'all' });
    expect(await a.receive(ca)).toEqual({ hello: 'all' });
    expect(await b.receive(cb, { timeoutMs: 5000 })).toEqual({ hello: 'all' });
    expect(await peerA.request(7)).toEqual({ answeredBy: 'a', m: 7 });
    // b registered no request handler: its answer is a remote error, not a hang.
    await rejectsWith(peerB.request(8), 'ERR_REMOTE');
    // Messages to a client can also be read as an async iterator.
    const iterated: unknown[] = [];
    const done = (async () => {
      for await (const m of cb) {
        iterated.push(m);
        if (iterated.length === 3) break;
      }
    })();
    await peerB.sendBatch([1, 2, 3]);
    await done;
    expect(iterated).toEqual([1, 2, 3]);
  });

  it('speaks json and raw when asked', async () => {
    const server = await echoServer();
    const json = transport({ encoding: 'json' });
    const cj = await json.connect('127.0.0.1', server.port);
    expect(cj.encoding).toBe('json');
    expect(await json.request(cj, { a: [1, 'x'] })).toEqual({ a: [1, 'x'] });
    const raw = transport({ encoding: 'raw' });
    const cr = await raw.connect('127.0.0.1', server.port);
    const bytes = new Uint8Array([0, 1, 2, 255]);
    expect(Array.from((await raw.request(cr, bytes)) as Uint8Array)).toEqual([0, 1, 2, 255]);
  });

  it('works over IPv6 loopback', async () => {
    const server = await echoServer({ host: '::1' });
    const t = transport();
    const conn = await t.connect('::1', server.port);
    expect(conn.peer).toBe(`[::1]:${server.port}`);
    expect(await t.request(`[::1]:${server.port}`, 'v6')).toBe('v6');
  });

  it('carries an 8 MiB payload', async () => {
    const server = await echoServer({ maxMessageSize: 16 << 20 });
    const t = transport({ maxMessageSize: 16 << 20 });
    const conn = await t.connect('127.0.0.1', server.port);
    const big = new Uint8Array(8 << 20).map((_, i) => i % 251);
    const back = (await t.request(conn, big)) as Uint8Array;
    expect(back.length).toBe(big.length);
    expect(Buffer.compare(Buffer.from(back), Buffer.from(big))).toBe(0);
  });

  it('keeps small and large messages in order, each copied at send', async () => {
    // Large bodies take their own path both ways (no batch copy on the way in, their own
    // array on the way out); order and content must not care.
    const server = await echoServer({ maxMessageSize: 1 << 20 });
    const got: Uint8Array[] = [];
    server.onMessage((m) => got.push(m as Uint8Array));
    // A window that holds the first four back until the peer has them: the rest wait.
    const t = transport({ encoding: 'raw', maxMessageSize: 1 << 20, sendBufferHigh: 320 * 1024 });
    const conn = await t.connect('127.0.0.1', server.port);
    const sizes = [10, 20_000, 1, 300_000, 16_384, 16_383, 65_536, 5];
    const bodies = sizes.map((n, k) => new Uint8Array(n).map((_, i) => (i * 7 + k) % 256));
    const sent = bodies.map((b) => b.slice());
    const delivered = bodies.map((b) => conn.send(b));
    // The caller may reuse its buffers as soon as Connection.send returns.
    for (const b of bodies) b.fill(0xee);
    await Promise.all(delivered);
    await t.sendBatch(conn, sent);
    expect(got.map((m) => m.length)).toEqual([...sizes, ...sizes]);
    got.forEach((m, i) => {
      expect(Buffer.compare(Buffer.from(m), Buffer.from(sent[i % sizes.length] as Uint8Array))).toBe(0);
    });
  });

  it('lends large messages to a handler that borrows them, intact while it runs', async () => {
    const { server, t, conn } = await rawPair(16 << 20);
    const buffers = new Set<ArrayBufferLike>();
    const kept: Uint8Array[] = [];
    let bad = 0;
    server.onMessage(
      (m) => {
        const body = m as Uint8Array;
        // Every byte of message k is k: checked while the handler runs, the bytes are its.
        const k = body[0] as number;
        if (!isChunk(body, k)) bad++;
        buffers.add(body.buffer);
        kept.push(body.slice());
      },
      { borrow: true },
    );
    const count = 200;
    await t.sendBatch(
      conn,
      Array.from({ length: count }, (_, k) => chunk(k)),
    );
    expect(bad).toBe(0);
    expect(kept.map((b) => b[0])).toEqual(Array.from({ length: count }, (_, k) => k));
    expect(kept.every((b, k) => isChunk(b, k))).toBe(true);
    // Lent: 12.5 MiB came in a few reused buffers, not one per message.
    expect(buffers.size).toBeLessThan(count / 4);
    // Too large to lend: the message gets a buffer of its own, intact all the same.
    const big = new Uint8Array(12 << 20).map((_, i) => i % 251);
    let gotBig: Uint8Array | undefined;
    server.onMessage(
      (m) => {
        gotBig = (m as Uint8Array).slice();
      },
      { borrow: true },
    );
    await t.send(conn, big);
    expect(Buffer.compare(Buffer.from(gotBig as Uint8Array), Buffer.from(big))).toBe(0);
  });

  it('lends to a borrowing client too; a handler that replaces it mid-batch gets copies', async () => {
    const server = await echoServer({ maxMessageSize: 1 << 20 });
    const t = transport({ encoding: 'raw', maxMessageSize: 1 << 20 });
    const kept: Uint8Array[] = [];
    const buffers = new Set<ArrayBufferLike>();
    // Messages 0-39 and 80-119 go to a handler that borrows (and keeps copies), 40-79 to
    // one that keeps what it gets. The rest of the batch that message 39 came in was lent
    // to the first handler: those must reach the second as copies, or the lent buffer's
    // reuse for 80-119 would overwrite them.
    const borrowing = (m: unknown) => {
      const body = m as Uint8Array;
      if (kept.length < 40) buffers.add(body.buffer);
      kept.push(body.slice());
      if (kept.length === 40) t.onMessage(keeping);
    };
    const keeping = (m: unknown) => {
      kept.push(m as Uint8Array);
      if (kept.length === 80) t.onMessage(borrowing, { borrow: true });
    };
    t.onMessage(borrowing, { borrow: true });
    const conn = await t.connect('127.0.0.1', server.port);
    await conn.send(Uint8Array.of(1)); // the server knows its peer once a message came
    const [peer] = server.peers();
    const count = 120;
    await (peer as Connection).sendBatch(Array.from({ length: count }, (_, k) => chunk(k)));
    expect(kept.length).toBe(count);
    expect(kept.every((b, k) => isChunk(b, k))).toBe(true);
    // Lent to the first handler: 40 messages in a few buffers, not one each.
    expect(buffers.size).toBeLessThan(10);
  });

  it('sends from a send buffer, whole or in part, again and again', async () => {
    const { server, conn } = await rawPair(1 << 20);
    const got: Uint8Array[] = [];
    server.onMessage((m) => got.push(m as Uint8Array));
    const buffer = allocSendBuffer(256 * 1024);
    expect(buffer.every((b) => b === 0)).toBe(true);
    buffer.forEach((_, i) => {
      buffer[i] = (i * 13) % 251;
    });
    // Slices of it (large and small) at odd offsets, then the whole buffer 40 times over
    // (more than sendBufferHigh: the last ones wait for room, and are copied then).
    const parts = [buffer.subarray(1, 70_001), buffer.subarray(100_003), buffer.subarray(7, 9)];
    const sent = [...parts, ...Array.from({ length: 40 }, () => buffer)];
    await Promise.all(sent.map((m) => conn.send(m)));
    expect(got.length).toBe(sent.length);
    for (const [i, m] of got.entries()) {
      expect(Buffer.compare(Buffer.from(m), Buffer.from(sent[i] as Uint8Array)), `message ${i}`).toBe(0);
    }
    // Delivered: the buffer is the caller's again, and the next send carries what it holds now.
    buffer.fill(0x5a);
    await conn.send(buffer.subarray(0, 20_000));
    expect(got.at(-1)?.every((b) => b === 0x5a)).toBe(true);
    expect(allocSendBuffer(0).length).toBe(0);
  });

  it("keeps a send buffer's memory while a message from it is in flight, whatever JS drops", async () => {
    const gc = (globalThis as { gc?: () => void }).gc;
    expect(gc, 'vitest runs the backends with --expose-gc').toBeTypeOf('function');
    const { server, conn } = await rawPair(1 << 20);
    let intact = 0;
    server.onMessage((m) => {
      const body = m as Uint8Array;
      if (body.length === 65_536 && body.every((b, i) => b === (i * 7) % 256)) intact++;
    });
    const delivered: Promise<void>[] = [];
    for (let k = 0; k < 100; k++) {
      const buffer = allocSendBuffer(65_536);
      buffer.forEach((_, i) => {
        buffer[i] = (i * 7) % 256;
      });
      delivered.push(conn.send(buffer));
      gc?.(); // the array may go now; the engine's share of its memory may not
    }
    await Promise.all(delivered);
    gc?.();
    expect(intact).toBe(100);
  });

  it('hands stable bytes to handlers that do not borrow, and to receive()', async () => {
    const { server, t, conn } = await rawPair(1 << 20);
    const kept: Uint8Array[] = [];
    server.onMessage((m) => kept.push(m as Uint8Array));
    const count = 100;
    const bodies = Array.from({ length: count }, (_, k) => chunk(k));
    await t.sendBatch(conn, bodies);
    // Kept past the handler, every message still holds its own bytes.
    expect(kept.every((b, k) => isChunk(b, k))).toBe(true);
    // The client side receives with receive(): queued messages keep their bytes too.
    const [peer] = server.peers();
    await (peer as Connection).sendBatch(bodies);
    const got = await Promise.all(bodies.map(() => conn.receive()));
    expect(got.every((b, k) => (b as Uint8Array).every((x) => x === k))).toBe(true);
  });

  it('lends msgpack byte strings to a borrowing handler, decoded whole', async () => {
    const server = await echoServer({ maxMessageSize: 1 << 20 });
    const got: { id: number; ok: boolean }[] = [];
    const buffers = new Set<ArrayBufferLike>();
    server.onMessage(
      (m) => {
        const { id, data } = m as { id: number; data: Uint8Array };
        got.push({ id, ok: data.length === 40_000 && data.every((x) => x === id % 256) });
        buffers.add(data.buffer);
      },
      { borrow: true },
    );
    const t = transport({ maxMessageSize: 1 << 20 });
    const conn = await t.connect('127.0.0.1', server.port);
    const messages = Array.from({ length: 50 }, (_, id) => ({ id, data: Buffer.alloc(40_000, id) }));
    await t.sendBatch(conn, messages);
    expect(got).toEqual(messages.map(({ id }) => ({ id, ok: true })));
    expect(buffers.size).toBeLessThan(messages.length / 4);
  });

  it('sends bytes under msgpack as a standard bin, at every length form, as they were', async () => {
    // Standard MessagePack (bin 8/16/32), which any MessagePack library reads as bytes.
    expect([...encode(Uint8Array.of(1, 2, 3), 'msgpack')]).toEqual([0xc4, 3, 1, 2, 3]);
    const server = await echoServer({ maxMessageSize: 1 << 20 });
    const got: unknown[] = [];
    server.onMessage((m) => got.push(m));
    const t = transport({ maxMessageSize: 1 << 20 });
    const conn = await t.connect('127.0.0.1', server.port);
    const sizes = [0, 1, 255, 256, 65_535, 65_536, 300_000];
    const bodies = sizes.map((n) => new Uint8Array(n).map((_, i) => (i * 7 + n) % 256));
    await t.sendBatch(conn, [...bodies, Buffer.from('a buffer'), { nested: bodies[2] }]);
    expect(got).toHaveLength(bodies.length + 2);
    for (const [i, b] of bodies.entries()) {
      expect(got[i]).toBeInstanceOf(Uint8Array);
      expect(Buffer.from(got[i] as Uint8Array).equals(b)).toBe(true);
    }
    expect(Buffer.from(got[bodies.length] as Uint8Array).toString()).toBe('a buffer');
    expect((got[bodies.length + 1] as { nested: Uint8Array }).nested).toEqual(bodies[2]);
    // A body that only starts like a bin is not taken for one: the decoder rejects it.
    expect(() => decode(Uint8Array.of(0xc4, 5, 1), 'msgpack')).toThrow(/cannot decode msgpack/);
    expect(decode(encode(new Uint8Array(70_000).fill(9), 'msgpack'), 'msgpack')).toEqual(
      new Uint8Array(70_000).fill(9),
    );
    // And requests answer bytes with bytes.
    expect(await t.request(conn, Uint8Array.of(4, 5))).toEqual(Uint8Array.of(4, 5));
  });

  it('hands a long burst of sends to the engine while it is being made', async () => {
    // As a socket write goes out at once: the peer can work on the burst meanwhile.
    const { t, conn } = await rawPair(1 << 20);
    const body = new Uint8Array(64).fill(7);
    const sends: Promise<void>[] = [];
    for (let i = 0; i < 4000; i++) sends.push(conn.send(body));
    const during = t.getPoolStats().totals.messagesOut;
    expect(during).toBeGreaterThan(0);
    expect(during).toBeLessThan(4000);
    await Promise.all(sends);
    expect(t.getPoolStats().totals.messagesOut).toBe(4000);
  });

  it('reports server stats', async () => {
    const server = await echoServer();
    const t = transport();
    const conn = await t.connect('127.0.0.1', server.port);
    await t.request(conn, 1);
    await t.send(conn, 2);
    const s = server.stats();
    expect(s.connections).toBe(1);
    expect(s.accepted).toBe(1);
    expect(s.totals.requestsIn).toBe(1);
    expect(s.totals.messagesIn).toBe(1);
  });
});
