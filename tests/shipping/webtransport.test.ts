// Browsers reach a quicwire server over WebTransport: headless Chromium's own
// `WebTransport`, with the certificate trusted by its hash, against a quicwire server in its
// own Node process over UDP, on each backend. Two clients in the page:
// - tests/webtransport/peer.js, written from docs/PROTOCOL.md apart from the engine, as the
//   aioquic peer is for QUIC clients: what passes there is the wire protocol a browser sees;
// - quicwire's own QuicTransport from the browser bundle (`transport: 'webtransport'`): the
//   wasm engine's session on the browser's streams, with the API a Node client has.

import type { ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QuicTransport } from '../../ts/index.js';
import { lineFrom, spawnFixture } from '../fixtures/spawn.js';
import { haveChromium, launchChromium, warnIfNoChromium } from './chromium.js';

warnIfNoChromium('WebTransport test');
const PEER = readFileSync(new URL('../webtransport/peer.js', import.meta.url));
const BUNDLE = new URL('../../dist/browser/', import.meta.url);

type Info = { port: number; ca: string; hash: string };
/** The server of the backend under test. */
let backend: string;
let fixture: ChildProcess;
let info: Info;
let http: Server;
let base: string;
let browser: Browser;

async function startServer(origins: string[] = []): Promise<[ChildProcess, Info]> {
  const child = spawnFixture('echo-server.ts', [], {
    QUICWIRE_BACKEND: backend,
    QUICWIRE_WEBTRANSPORT: '/quicwire',
    QUICWIRE_WEBTRANSPORT_ORIGINS: origins.join(','),
  });
  return [child, JSON.parse(await lineFrom(child)) as Info];
}

beforeAll(async () => {
  if (!haveChromium) return;
  // The page and its peer module, from loopback (a secure context, as WebTransport needs).
  if (!existsSync(new URL('quicwire.js', BUNDLE))) {
    throw new Error('dist/browser/quicwire.js is missing: run `npm run build` first');
  }
  http = createServer((req, res) => {
    const bundled = req.url?.match(/^\/dist\/browser\/(quicwire\.js|quicwire_wasm_bg\.wasm)$/)?.[1];
    if (req.url === '/peer.js') {
      res.writeHead(200, { 'content-type': 'text/javascript' }).end(PEER);
    } else if (bundled) {
      const type = bundled.endsWith('.wasm') ? 'application/wasm' : 'text/javascript';
      res.writeHead(200, { 'content-type': type }).end(readFileSync(new URL(bundled, BUNDLE)));
    } else if (req.url === '/client.html') {
      const html = `<!doctype html><script type="module">
        import * as quicwire from '/dist/browser/quicwire.js';
        await quicwire.initWasm();
        window.quicwire = quicwire;</script>`;
      res.writeHead(200, { 'content-type': 'text/html' }).end(html);
    } else {
      const html = `<!doctype html><script type="module">
        import * as peer from '/peer.js'; window.peerModule = peer;</script>`;
      res.writeHead(200, { 'content-type': 'text/html' }).end(html);
    }
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(http.address() as AddressInfo).port}/`;
  browser = await launchChromium();
}, 60_000);

afterAll(async () => {
  await browser?.close();
  http?.close();
});

/** A fresh page that has imported the peer module. */
async function page(): Promise<Page> {
  const p = await browser.newPage();
  await p.goto(base);
  await p.waitForFunction(() => (window as unknown as { peerModule?: unknown }).peerModule);
  return p;
}

/** Runs `body` in a page with `peer` open to the server at `path`. */
async function withPeer<T>(
  body: string,
  { path = '/quicwire', hash = info.hash, port = info.port } = {},
): Promise<T> {
  const p = await page();
  try {
    return (await p.evaluate(
      async ({ body, url, hash }) => {
        const { Peer } = (
          window as unknown as { peerModule: { Peer: { open(u: string, h: string): Promise<unknown> } } }
        ).peerModule;
        try {
          const peer = await Peer.open(url, hash);
          const run = new Function('peer', `return (async () => { ${body} })()`);
          return await run(peer);
        } catch (e) {
          return { thrown: String(e), code: (e as { code?: string }).code };
        }
      },
      { body, url: `https://127.0.0.1:${port}${path}`, hash },
    )) as T;
  } finally {
    await p.close();
  }
}

/** Runs `body` in a page with `t`, a QuicTransport over WebTransport to servers at `path`
 *  trusting `hash`, and `port`, the server's; closes `t` after. */
async function withClient<T>(
  body: string,
  { path = '/quicwire', hash = info.hash, port = info.port, options = {} } = {},
): Promise<T> {
  const p = await browser.newPage();
  try {
    await p.goto(`${base}client.html`);
    await p.waitForFunction(() => (window as unknown as { quicwire?: unknown }).quicwire);
    return (await p.evaluate(
      async ({ body, path, hash, port, options }) => {
        const quicwire = (window as unknown as { quicwire: Record<string, never> }).quicwire;
        const { QuicTransport } = quicwire as unknown as {
          QuicTransport: new (o: object) => { close(): Promise<void> };
        };
        const t = new QuicTransport({
          transport: 'webtransport',
          webTransport: { path, certificateHashes: [hash] },
          maxMessageSize: 16 << 20,
          ...options,
        });
        try {
          const run = new Function('t', 'port', 'quicwire', `return (async () => { ${body} })()`);
          return await run(t, port, quicwire);
        } catch (e) {
          return { thrown: String(e), code: (e as { code?: string }).code };
        } finally {
          await t.close();
        }
      },
      { body, path, hash, port, options },
    )) as T;
  } finally {
    await p.close();
  }
}

/** A server of backend `engine` for the tests of the describe block this is called in. */
function serveOn(engine: string): void {
  beforeAll(async () => {
    backend = engine;
    [fixture, info] = await startServer();
  });
  afterAll(() => {
    fixture?.kill();
  });
}

describe.runIf(haveChromium).each(['native', 'wasm'])(
  'WebTransport from headless Chromium to a %s server',
  (engine) => {
    serveOn(engine);

    it('opens a session and agrees on version 2 and JSON', async () => {
      const hello = await withPeer<{ version: number; encodings: number[] }>('return peer.hello;');
      expect(hello.version).toBe(2);
      expect(hello.encodings).toContain(2);
    });

    it('carries 1,000 messages and 1,000 requests from the page', async () => {
      const out = await withPeer<{ before: number; after: number; answers: unknown[] }>(`
      const before = await peer.request({ op: 'count' });
      const batch = Array.from({ length: 1000 }, (_, n) => ({ ch: 7, n }));
      await peer.send(batch.slice(0, 500));
      await peer.send(batch.slice(500));
      const after = await peer.request({ op: 'count' });
      const answers = await Promise.all(Array.from({ length: 1000 }, (_, n) => peer.request({ n })));
      return { before, after, answers };
    `);
      // send resolved on the server's ACKs: its application had all 1,000 by then.
      expect(out.after - out.before).toBe(1000);
      expect(out.answers).toEqual(Array.from({ length: 1000 }, (_, n) => ({ n })));
    });

    it('takes 1,000 pushed messages and answers 1,000 requests from the server', async () => {
      const out = await withPeer<{ pushed: number; received: unknown[]; asked: unknown[] }>(`
      peer.onRequest((body) => ({ answered: body }));
      const pushed = await peer.request({ op: 'push', n: 1000 });
      const received = peer.received.slice();
      const asked = await Promise.all(
        Array.from({ length: 1000 }, (_, i) => peer.request({ op: 'ask', body: { i } })),
      );
      return { pushed, received, asked };
    `);
      expect(out.pushed).toBe(1000);
      // The server's sends resolved on the page's ACKs, before it answered.
      expect(out.received).toEqual(Array.from({ length: 1000 }, (_, i) => ({ pushed: i })));
      expect(out.asked).toEqual(Array.from({ length: 1000 }, (_, i) => ({ answered: { i } })));
    });

    it('moves an 8 MiB payload each way', async () => {
      const out = await withPeer<{ echoed: number; asked: number; same: boolean }>(`
      const blob = 'q'.repeat(8 << 20);
      const echoed = await peer.request({ blob });
      peer.onRequest((body) => body);
      const asked = await peer.request({ op: 'ask', body: { blob } });
      return { echoed: echoed.blob.length, asked: asked.blob.length, same: echoed.blob === blob };
    `);
      expect(out).toEqual({ echoed: 8 << 20, asked: 8 << 20, same: true });
    });

    it("reports a handler's error with its code and keeps the session", async () => {
      const out = await withPeer<{ code: string; message: string; after: unknown }>(`
      let failed;
      try { await peer.request({ op: 'fail' }); } catch (e) { failed = e; }
      const after = await peer.request({ still: 'here' });
      return { code: failed.code, message: failed.message, after };
    `);
      expect(out.code).toBe('ERR_REMOTE');
      expect(out.message).toContain('fails on purpose');
      expect(out.after).toEqual({ still: 'here' });
    });

    it('echoes datagrams (HTTP/3 datagrams of the session)', async () => {
      const out = await withPeer<unknown[]>(`
      for (let i = 0; i < 50 && peer.datagrams.length === 0; i++) {
        await peer.sendDatagram({ d: i });
        await new Promise((r) => setTimeout(r, 20));
      }
      return peer.datagrams;
    `);
      expect(out.length).toBeGreaterThan(0);
      expect(out[0]).toMatchObject({ d: expect.any(Number) });
    });

    it('turns down another path and a certificate of another hash', async () => {
      const wrongPath = await withPeer<{ thrown?: string }>('return "opened";', { path: '/elsewhere' });
      expect(wrongPath.thrown).toMatch(/WebTransport|opening handshake|failed/i);
      const wrongHash = await withPeer<{ thrown?: string }>('return "opened";', { hash: 'ab'.repeat(32) });
      expect(wrongHash.thrown).toMatch(/WebTransport|opening handshake|failed/i);
      // The server is unharmed, for browsers and for quicwire clients alike.
      const after = await withPeer<unknown>('return await peer.request({ ok: 1 });');
      expect(after).toEqual({ ok: 1 });
      const client = new QuicTransport({ ca: info.ca });
      try {
        const conn = await client.connect('127.0.0.1', info.port);
        expect(await conn.request({ node: true })).toEqual({ node: true });
      } finally {
        await client.close();
      }
    });

    it('takes pages of the origins given, and only those', async () => {
      const pageOrigin = new URL(base).origin;
      const [other, otherInfo] = await startServer(['https://app.example']);
      const [ours, oursInfo] = await startServer(['https://app.example', pageOrigin]);
      try {
        const refused = await withPeer<{ thrown?: string }>('return "opened";', {
          port: otherInfo.port,
          hash: otherInfo.hash,
        });
        expect(refused.thrown).toBeTruthy();
        const taken = await withPeer<unknown>('return await peer.request({ from: "page" });', {
          port: oursInfo.port,
          hash: oursInfo.hash,
        });
        expect(taken).toEqual({ from: 'page' });
      } finally {
        other.kill();
        ours.kill();
      }
    });

    it('sees the session end when the server closes, and cannot open another', async () => {
      const [child, closing] = await startServer();
      try {
        const out = await withPeer<{ answer: unknown; closed: unknown }>(
          `
        const answer = await peer.request({ op: 'close' });
        const closed = await peer.closed;
        return { answer, closed };
      `,
          { port: closing.port, hash: closing.hash },
        );
        expect(out.answer).toBe('closing');
        expect(out.closed).toBeTruthy();
        await new Promise((resolve) => child.once('exit', resolve));
        const again = await withPeer<{ thrown?: string }>('return "opened";', {
          port: closing.port,
          hash: closing.hash,
        });
        expect(again.thrown).toBeTruthy();
      } finally {
        child.kill();
      }
    });
  },
);

describe.runIf(haveChromium).each(['native', 'wasm'])(
  "quicwire's QuicTransport in Chromium, over the browser's WebTransport, to a %s server",
  (engine) => {
    serveOn(engine);

    it('pools one connection per host:port and says what carries it', async () => {
      const out = await withClient<Record<string, unknown>>(`
      const [a, b] = await Promise.all([t.connect('127.0.0.1', port), t.connect('127.0.0.1', port)]);
      const byKey = await t.request('127.0.0.1:' + port, { by: 'key' });
      const pool = t.getPoolStats();
      return { same: a === b, carrier: a.carrier, stats: pool.connections.map((c) => c.carrier), byKey, created: pool.created };
    `);
      expect(out).toEqual({
        same: true,
        carrier: 'webtransport',
        stats: ['webtransport'],
        byKey: { by: 'key' },
        created: 1,
      });
    });

    it('carries 1,000 messages and 1,000 requests each way', async () => {
      const out = await withClient<Record<string, unknown>>(`
      const conn = await t.connect('127.0.0.1', port);
      const before = await t.request(conn, { op: 'count' });
      await t.sendBatch(conn, Array.from({ length: 1000 }, (_, n) => ({ ch: 1, n })));
      const after = await t.request(conn, { op: 'count' });
      const answers = await Promise.all(Array.from({ length: 1000 }, (_, n) => t.request(conn, { n })));
      const pushing = t.request(conn, { op: 'push', n: 1000 });
      let inOrder = true;
      for (let i = 0; i < 1000; i++) inOrder &&= (await t.receive(conn, { timeoutMs: 10000 })).pushed === i;
      // The server's requests: each 'ask' makes it request the page once.
      t.onRequest((msg) => ({ fromPage: msg }));
      const asked = await Promise.all(Array.from({ length: 1000 }, (_, q) => t.request(conn, { op: 'ask', body: { q } })));
      return {
        sent: after - before,
        echoed: answers.every((a, n) => a.n === n),
        pushed: await pushing,
        inOrder,
        askedBack: asked.every((a, q) => a.fromPage.q === q),
      };
    `);
      expect(out).toEqual({ sent: 1000, echoed: true, pushed: 1000, inOrder: true, askedBack: true });
    });

    it('moves 8 MiB each way, and hands pushed messages to onMessage', async () => {
      const out = await withClient<Record<string, unknown>>(`
      const conn = await t.connect('127.0.0.1', port);
      const big = new Uint8Array(8 << 20).map((_, i) => i % 251);
      const intact = (b) => b.length === big.length && b.every((x, i) => x === i % 251);
      const echoed = intact(await t.request(conn, big));
      t.onRequest((body) => body);
      const asked = intact(await t.request(conn, { op: 'ask', body: big }));
      const pushed = [];
      const all = new Promise((resolve) => t.onMessage((msg, from) => {
        pushed.push(msg.pushed);
        if (pushed.length === 100) resolve(from === conn);
      }));
      await t.request(conn, { op: 'push', n: 100 });
      const fromConn = await all;
      return { echoed, asked, inOrder: pushed.every((p, i) => p === i), fromConn };
    `);
      expect(out).toEqual({ echoed: true, asked: true, inOrder: true, fromConn: true });
    });

    it("answers the server's requests with onRequest", async () => {
      const out = await withClient<unknown>(`
      t.onRequest((msg) => ({ fromPage: msg }));
      return await t.request('127.0.0.1:' + port, { op: 'ask', body: { q: 7 } });
    `);
      expect(out).toEqual({ fromPage: { q: 7 } });
    });

    it('sends and takes datagrams', async () => {
      const out = await withClient<unknown>(`
      const conn = await t.connect('127.0.0.1', port);
      const got = new Promise((resolve) => t.onDatagram((d) => resolve(Array.from(d))));
      for (let i = 0; i < 50; i++) {
        await conn.sendDatagram(new Uint8Array([1, 2, 3, i]));
        const first = await Promise.race([got, new Promise((r) => setTimeout(r, 20))]);
        if (first) return { max: conn.maxDatagramSize > 0, first: first.slice(0, 3) };
      }
      return 'none came back';
    `);
      expect(out).toEqual({ max: true, first: [1, 2, 3] });
    });

    it('times a request out, aborts another, and the connection goes on', async () => {
      const out = await withClient<Record<string, unknown>>(`
      const conn = await t.connect('127.0.0.1', port);
      const late = await t.request(conn, { sleepMs: 3000 }, { timeoutMs: 200 }).catch((e) => e.code);
      const controller = new AbortController();
      const aborted = t.request(conn, { sleepMs: 3000 }, { signal: controller.signal }).catch((e) => e.code);
      setTimeout(() => controller.abort(), 50);
      const after = await t.request(conn, { still: 'open' });
      return { late, aborted: await aborted, after };
    `);
      expect(out).toEqual({ late: 'ERR_TIMEOUT', aborted: 'ERR_ABORTED', after: { still: 'open' } });
    });

    it("reports a handler's error, and a message over the server's limit, with their codes", async () => {
      const out = await withClient<Record<string, unknown>>(`
      const conn = await t.connect('127.0.0.1', port);
      const remote = await t.request(conn, { op: 'fail' }).catch((e) => e.code);
      const tooLarge = await t.send(conn, new Uint8Array(17 << 20)).catch((e) => e.code);
      return { remote, tooLarge, after: await t.request(conn, 'ok') };
    `);
      expect(out).toEqual({ remote: 'ERR_REMOTE', tooLarge: 'ERR_MESSAGE_TOO_LARGE', after: 'ok' });
    });

    it('turns a wrong hash, a wrong path and a port with no server into typed errors', async () => {
      const wrongHash = await withClient<{ code?: string; thrown?: string }>(
        "await t.connect('127.0.0.1', port); return 'opened';",
        { hash: 'ab'.repeat(32) },
      );
      expect(wrongHash.code).toBe('ERR_CONNECTION_CLOSED');
      expect(wrongHash.thrown).toContain('did not open');
      const wrongPath = await withClient<{ code?: string }>(
        "await t.connect('127.0.0.1', port); return 'opened';",
        {
          path: '/elsewhere',
        },
      );
      expect(wrongPath.code).toBe('ERR_CONNECTION_CLOSED');
      const nobody = await withClient<{ code?: string }>(
        "await t.connect('127.0.0.1', 9); return 'opened';",
        {
          options: { connectTimeoutMs: 1500 },
        },
      );
      expect(['ERR_CONNECT_TIMEOUT', 'ERR_CONNECTION_CLOSED']).toContain(nobody.code);
      // The server is unharmed.
      expect(await withClient<unknown>("return await t.request('127.0.0.1:' + port, 'still');")).toBe(
        'still',
      );
    });

    it('sees the server close: the connection closes, and later calls fail with a code', async () => {
      const [child, closing] = await startServer();
      try {
        const out = await withClient<Record<string, unknown>>(
          `
        const conn = await t.connect('127.0.0.1', port);
        const closed = new Promise((resolve) => t.onDisconnect((c, e) => resolve(e.code)));
        const answer = await t.request(conn, { op: 'close' });
        const code = await closed;
        const after = await t.request(conn, 'late').catch((e) => e.code);
        return { answer, code, after };
      `,
          { port: closing.port, hash: closing.hash },
        );
        expect(out).toEqual({
          answer: 'closing',
          code: 'ERR_CONNECTION_CLOSED',
          after: 'ERR_CONNECTION_CLOSED',
        });
      } finally {
        child.kill();
      }
    });
  },
);
