// The wasm engine on a MemoryNetwork that loses, duplicates and delays datagrams, on a
// ManualClock: timeouts of seconds pass without waiting, and a seed gives the same run.
// (The native engine does its own UDP; a MemoryNetwork is the wasm engine's.)

import { describe, expect, it } from 'vitest';
import {
  type Connection,
  generateDevCert,
  initWasm,
  ManualClock,
  MemoryNetwork,
  QuicServer,
  QuicTransport,
  type QuicwireError,
} from '../ts/index.js';

const wasm = process.env.QUICWIRE_BACKEND === 'wasm';
const clock = new ManualClock();
const network = new MemoryNetwork({ clock, seed: 7 });
if (wasm) await initWasm(undefined, { network, backend: 'wasm' });
const cert = generateDevCert(['localhost', '127.0.0.1']);

/** A server that echoes requests, except "never", which it never answers. */
async function pair(): Promise<{ server: QuicServer; t: QuicTransport; conn: Connection }> {
  const server = await QuicServer.listen({ cert: cert.cert, key: cert.key });
  server.onRequest((m) => (m === 'never' ? new Promise(() => {}) : m));
  const t = new QuicTransport({ ca: cert.cert });
  const connecting = t.connect('127.0.0.1', server.port);
  const conn = await until(connecting);
  return { server, t, conn };
}

/** Moves the clock on in small steps until `work` settles (at most `limitMs` of clock time). */
async function until<T>(work: Promise<T>, limitMs = 60_000): Promise<T> {
  let settled = false;
  const done = work.finally(() => {
    settled = true;
  });
  for (let t = 0; t < limitMs && !settled; t += 5) await clock.advance(5);
  if (!settled) throw new Error(`not settled within ${limitMs} ms of clock time`);
  return done;
}

async function close(server: QuicServer, t: QuicTransport): Promise<void> {
  const closing = Promise.all([t.close(), server.close({ graceful: false })]);
  await until(closing);
}

describe.runIf(wasm)('MemoryNetwork: a poor link on a manual clock', () => {
  it('a 30 s request timeout passes on the clock, not on the wall', async () => {
    network.setLink({});
    const { server, t, conn } = await pair();
    const started = performance.now();
    let failed: QuicwireError | undefined;
    t.request(conn, 'never', { timeoutMs: 30_000 }).catch((e: QuicwireError) => {
      failed = e;
    });
    await clock.advance(29_000);
    expect(failed, 'not before its time').toBeUndefined();
    await clock.advance(1_100);
    expect(failed?.code).toBe('ERR_TIMEOUT');
    expect(performance.now() - started).toBeLessThan(10_000);
    await close(server, t);
  });

  it('every message once and in order, every request answered, over loss, duplicates and jitter', async () => {
    network.setLink({ delayMs: 5, jitterMs: 4, loss: 0.05, duplicate: 0.2 });
    const { lost, duplicated } = network;
    const { server, t, conn } = await pair();
    const got: unknown[] = [];
    server.onMessage((m) => got.push(m));
    const sent = Array.from({ length: 2000 }, (_, i) => ({ i, pad: 'x'.repeat(500) }));
    const delivered = t.sendBatch(conn, sent);
    const answers = Promise.all(Array.from({ length: 50 }, (_, i) => t.request(conn, { q: i })));
    await until(Promise.all([delivered, answers]));
    expect(got).toEqual(sent);
    expect(await answers).toEqual(Array.from({ length: 50 }, (_, i) => ({ q: i })));
    expect(network.lost).toBeGreaterThan(lost);
    expect(network.duplicated).toBeGreaterThan(duplicated);
    await close(server, t);
  });

  it('delay shows in the round-trip time', async () => {
    network.setLink({ delayMs: 40 });
    const { server, t, conn } = await pair();
    await until(t.request(conn, 'ping'));
    const rtt = t.getPoolStats().connections[0]?.rttMs ?? 0;
    expect(rtt).toBeGreaterThanOrEqual(80);
    expect(rtt).toBeLessThan(200);
    await close(server, t);
  });

  it('rejects link settings out of range', () => {
    expect(() => network.setLink({ loss: 2 })).toThrow(/loss/);
    expect(() => new MemoryNetwork({ delayMs: -1 })).toThrow(/delayMs/);
  });

  const far = generateDevCert(['10.9.0.1']);
  /** A server at an address other than the client's, so that datagrams are the usual
   *  1,200 bytes rather than loopback's 64 KiB (bulk then takes many round trips), over
   *  links of 20 ms; and a client connected to it. */
  async function farPair(): Promise<{ server: QuicServer; t: QuicTransport; conn: Connection }> {
    network.setLink({ delayMs: 20 });
    const server = await QuicServer.listen({ host: '10.9.0.1', cert: far.cert, key: far.key });
    const t = new QuicTransport({ ca: far.cert });
    const conn = await until(t.connect('10.9.0.1', server.port));
    return { server, t, conn };
  }

  it('a request with priority goes before the bulk queued ahead of it', async () => {
    /** How many of 31 bulk requests the server had before the one queued after them. */
    const ahead = async (priority: number): Promise<number> => {
      const { server, t, conn } = await farPair();
      const seen: string[] = [];
      server.onRequest((m) => {
        seen.push((m as { kind: string }).kind);
        return 'ok';
      });
      const bulk = 'x'.repeat(16 * 1024);
      const all = Array.from({ length: 31 }, () => t.request(conn, { kind: 'bulk', bulk }));
      all.push(t.request(conn, { kind: 'urgent', bulk }, { priority }));
      await until(Promise.all(all));
      await close(server, t);
      return seen.indexOf('urgent');
    };
    expect(await ahead(10)).toBe(0);
    // The control: at the same priority it waits its turn behind most of them.
    expect(await ahead(0)).toBeGreaterThan(15);
  });

  it('a message lane of higher priority passes the bulk queued ahead of it', async () => {
    /** How many of 128 bulk messages the server had before the last of 8 sent after them. */
    const ahead = async (priority: number): Promise<number> => {
      const { server, t, conn } = await farPair();
      const seen: string[] = [];
      server.onMessage((m) => seen.push((m as { kind: string }).kind));
      const bulk = 'x'.repeat(8 * 1024);
      const sends = [
        conn.sendBatch(Array.from({ length: 128 }, () => ({ kind: 'bulk', bulk }))),
        conn.sendBatch(
          Array.from({ length: 8 }, () => ({ kind: 'urgent', bulk })),
          { priority },
        ),
      ];
      await until(Promise.all(sends));
      await close(server, t);
      return seen.slice(0, seen.lastIndexOf('urgent')).filter((k) => k === 'bulk').length;
    };
    expect(await ahead(10)).toBeLessThanOrEqual(1);
    // Below the bulk's lane, it waits for the bulk to be sent (the last flight's two lanes
    // may be read in either order).
    expect(await ahead(-10)).toBeGreaterThan(96);
  });
});
