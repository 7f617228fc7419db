// The browser bundle in headless Chromium: the page loads dist/browser/quicwire.js, runs
// initWasm, and two wasm engines complete a QUIC handshake and exchange messages in memory;
// and a page reaches a quicwire server in Node over a WebSocket to its port (wss:// from a
// page served over https).

import { existsSync, readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createSecureServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { extname, join, normalize } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateDevCert, QuicServer } from '../../ts/index.js';
import { haveChromium, launchChromium, warnIfNoChromium } from './chromium.js';

const root = new URL('../..', import.meta.url).pathname;
warnIfNoChromium('browser bundle test');
const TYPES: Record<string, string> = {
  '.html': 'text/html',
  '.js': 'text/javascript',
  '.wasm': 'application/wasm',
  '.map': 'application/json',
};

let server: Server;
let base: string;
/** The same files over https (a dev certificate the test's browser context accepts). */
let secureServer: Server;
let secureBase: string;
let browser: Browser;

beforeAll(async () => {
  if (!haveChromium) return;
  if (!existsSync(join(root, 'dist/browser/quicwire.js'))) {
    throw new Error('dist/browser/quicwire.js is missing: run `npm run build` first');
  }
  // Static files from examples/, dist/ and pkg/ only, on loopback.
  const files = (req: IncomingMessage, res: ServerResponse) => {
    const path = normalize(decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname));
    const file = join(root, path.endsWith('/') ? `${path}index.html` : path);
    if (!/^\/(examples|dist|pkg)\//.test(path) || !existsSync(file)) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' });
    res.end(readFileSync(file));
  };
  server = createServer(files);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  secureServer = createSecureServer(generateDevCert(['127.0.0.1']), files);
  await new Promise<void>((resolve) => secureServer.listen(0, '127.0.0.1', resolve));
  secureBase = `https://127.0.0.1:${(secureServer.address() as AddressInfo).port}`;
  browser = await launchChromium();
}, 60_000);

afterAll(async () => {
  await browser?.close();
  server?.close();
  secureServer?.close();
});

/** Runs a page of examples/browser/; `secure`: served over https, in a context that takes
 *  the test's self-signed certificates (the page's and the quicwire server's). */
async function runPage(query: string, path = '', secure = false) {
  const context = await browser.newContext({ ignoreHTTPSErrors: secure });
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (err) => errors.push(err.message));
  await page.goto(`${secure ? secureBase : base}/examples/browser/${path}${query}`);
  const result = await page.evaluate(
    () => (window as unknown as { quicwireResult: Promise<unknown> }).quicwireResult,
  );
  const log = await page.locator('#log').textContent();
  await context.close();
  return { result: result as Record<string, unknown>, errors, log };
}

describe.runIf(haveChromium)('browser bundle (headless Chromium)', () => {
  it('loads the .wasm beside the bundle and runs a handshake and an exchange in the page', async () => {
    const { result, errors, log } = await runPage('');
    expect(errors).toEqual([]);
    expect(result.error).toBeUndefined();
    expect(result).toMatchObject({
      backend: 'wasm',
      delivered: 1000,
      inOrder: true,
      reply: { echo: { hello: 'from the page' }, at: 'server' },
      created: 1,
    });
    expect(result.rttMs).toBeGreaterThanOrEqual(0);
    expect(log).toContain('1000 messages delivered');
  });

  /** A quicwire server in Node for the remote page: echoes, counts, pushes, asks, fails
   *  and closes on request (see examples/browser/remote.js). */
  async function remoteServer(options: { tcp?: boolean; webTransport?: { path: string } }) {
    const tls = generateDevCert(['127.0.0.1'], { validDays: 14 });
    const server = await QuicServer.listen({
      cert: tls.cert,
      key: tls.key,
      maxMessageSize: 16 << 20,
      ...options,
    });
    let messages = 0;
    server.onMessage(() => {
      messages++;
    });
    server.onRequest(async (msg, peer) => {
      const m = msg as { op?: string; n?: number };
      if (m?.op === 'count') return messages;
      if (m?.op === 'fail') throw new Error('this handler fails on purpose');
      if (m?.op === 'push') {
        await Promise.all(Array.from({ length: m.n ?? 0 }, (_, i) => peer.send({ pushed: i })));
        return m.n;
      }
      if (m?.op === 'ask') {
        const answers = await Promise.all(Array.from({ length: m.n ?? 0 }, (_, q) => peer.request({ q })));
        return answers.filter((a, q) => (a as { fromPage?: { q?: number } })?.fromPage?.q === q).length;
      }
      if (m?.op === 'close') {
        setTimeout(() => void server.close({ graceful: true }), 10);
        return 'closing';
      }
      return msg;
    });
    return { server, tls };
  }

  /** What the remote page reports after its whole exchange over `carrier`. */
  const exchanged = (carrier: string) => ({
    backend: 'wasm',
    carrier,
    counted: 1000,
    echoed: 1000,
    bigIntact: true,
    handlerError: 'ERR_REMOTE',
    pushedInOrder: true,
    answered: 1000,
    afterClose: 'ERR_CONNECTION_CLOSED',
  });

  it.each([
    ['http', false],
    ['https (wss://)', true],
  ])('a page served over %s reaches a quicwire server in Node: messages and requests both ways, 8 MiB, errors, a close', async (_, secure) => {
    const { server, tls } = await remoteServer({ tcp: true });
    try {
      const query = `?port=${server.port}&ca=${encodeURIComponent(tls.cert)}`;
      const { result, errors, log } = await runPage(query, 'remote.html', secure);
      expect(errors).toEqual([]);
      expect(result).toEqual(exchanged('tcp'));
      expect(log).toContain('connected over tcp');
    } finally {
      await server.close({ graceful: false });
    }
  });

  it("a page's QuicTransport rides the browser's WebTransport to a quicwire server in Node: the same exchange", async () => {
    const { server, tls } = await remoteServer({ webTransport: { path: '/quicwire' } });
    try {
      const query = `?transport=webtransport&port=${server.port}&path=/quicwire&hash=${tls.hash}`;
      const { result, errors, log } = await runPage(query, 'remote.html');
      expect(errors).toEqual([]);
      expect(result).toEqual(exchanged('webtransport'));
      expect(log).toContain('connected over webtransport');
    } finally {
      await server.close({ graceful: false });
    }
  });

  it('takes the .wasm URL passed to initWasm explicitly', async () => {
    // pkg/'s copy, not the one beside the bundle; a URL with nothing behind it must then fail.
    const { result } = await runPage('?wasm=/pkg/quicwire_wasm_bg.wasm');
    expect(result).toMatchObject({ backend: 'wasm', delivered: 1000 });
    const missing = await runPage('?wasm=/dist/browser/nothing-here.wasm');
    expect(String(missing.result.error)).toMatch(/^ERR_BACKEND_UNAVAILABLE .*wasm/);
  });
});
