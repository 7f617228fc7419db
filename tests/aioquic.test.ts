// Interop with an independent QUIC stack: tests/interop/quicwire_peer.py, a quicwire peer on
// aioquic (Python) written from docs/PROTOCOL.md alone. Its client against a quicwire
// server, and a quicwire client against its server: HELLO, messages and their ACKs,
// requests, remote errors, hostile frames, server-sent traffic, GOAWAY and the close. The
// peer speaks protocol version 1 (ALPN quicwire/1), so this is also where quicwire, which
// speaks version 3, shows it still talks to version 1 peers both ways.

import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, expect, it } from 'vitest';
import { QuicServer, type QuicwireError } from '../ts/index.js';
import { cert, rejectsWith, sleep, transport } from './helpers.js';

const root = new URL('..', import.meta.url).pathname;
const PYTHON = process.env.QUICWIRE_PYTHON ?? join(root, 'target/interop-venv/bin/python');
const PEER = join(root, 'tests/interop/quicwire_peer.py');
// .ci/run makes the venv (tests/interop/requirements.txt) and sets QUICWIRE_REQUIRE_AIOQUIC=1,
// so there this cannot skip.
const haveAioquic = existsSync(PYTHON) || process.env.QUICWIRE_REQUIRE_AIOQUIC === '1';
if (!haveAioquic) {
  console.warn(
    `aioquic interop skipped: no ${PYTHON} (python3 -m venv target/interop-venv && ` +
      'target/interop-venv/bin/pip install -r tests/interop/requirements.txt)',
  );
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const bytes = (s: string) => encoder.encode(s);
const text = (b: unknown) => decoder.decode(b as Uint8Array);

interface Line {
  check?: string;
  ok?: boolean;
  port?: number;
  done?: boolean;
  [key: string]: unknown;
}

/** The peer in its own process: its JSON lines as they come. */
function peer(args: string[]): { child: ChildProcess; lines: AsyncIterator<Line> } {
  const child = spawn(PYTHON, [PEER, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  const rl = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  const iterator = rl[Symbol.asyncIterator]();
  const lines: AsyncIterator<Line> = {
    next: async () => {
      const n = await iterator.next();
      return n.done ? n : { value: JSON.parse(n.value) as Line, done: false };
    },
  };
  return { child, lines };
}

function certFiles(): { cert: string; key: string } {
  const dir = mkdtempSync(join(tmpdir(), 'quicwire-interop-'));
  const files = { cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem') };
  writeFileSync(files.cert, cert.cert);
  writeFileSync(files.key, cert.key);
  return files;
}

describe.runIf(haveAioquic)('interop with aioquic (an independent QUIC stack)', () => {
  it('its client against a quicwire server', async () => {
    const server = await QuicServer.listen({ cert: cert.cert, key: cert.key, encodings: ['raw'] });
    const messages: string[] = [];
    const answered: unknown[] = [];
    server.onMessage((m) => messages.push(text(m)));
    server.onRequest(async (m, conn) => {
      const body = text(m);
      if (body === 'fail') throw new Error('handler failed');
      if (body === 'push') {
        // Ten messages (resolved once the peer's application has them), then a request.
        await conn.sendBatch(Array.from({ length: 10 }, (_, i) => bytes(`s${i}`)));
        answered.push(text(await conn.request(bytes('hi'))));
        return bytes('pushed');
      }
      if (body === 'close') setTimeout(() => server.close({ graceful: true }), 10);
      return m;
    });
    const { child, lines } = peer(['client', String(server.port), certFiles().cert]);
    const checks: Line[] = [];
    for (let n = await lines.next(); !n.done && !n.value.done; n = await lines.next()) {
      checks.push(n.value);
    }
    child.kill();
    await server.close({ graceful: false });
    for (const c of checks) expect(c.ok, JSON.stringify(c)).toBe(true);
    expect(checks.map((c) => c.check)).toEqual([
      'hello',
      'messages acked',
      'request',
      'remote error',
      '50 requests at once',
      'oversized request answered',
      'hostile channels stopped',
      'connection survives',
      'messages from the server',
      'request from the server answered',
      'goaway',
      'closed',
    ]);
    expect(messages).toEqual(Array.from({ length: 100 }, (_, i) => `m${i}`));
    expect(answered).toEqual(['client:hi']);
  });

  it('a quicwire client against its server', async () => {
    const files = certFiles();
    const { child, lines } = peer(['server', files.cert, files.key]);
    try {
      const first = await lines.next();
      const port = (first.value as Line).port as number;
      const t = transport({ encoding: 'raw' });
      const conn = await t.connect('127.0.0.1', port);
      const ask = async (body: string) => text(await t.request(conn, bytes(body)));

      expect(JSON.parse(await ask('hello?'))).toEqual({ version: 1, max: 1 << 20, encodings: [3] });
      // Resolves only once the peer ACKed all 100.
      await t.sendBatch(
        conn,
        Array.from({ length: 100 }, (_, i) => bytes(`m${i}`)),
      );
      expect(JSON.parse(await ask('messages?'))).toEqual({ received: 100 });
      // Unconfirmed sends go as MESSAGE to a version 1 peer (it knows no LAZY_MESSAGE); a
      // confirmed one after them resolves once it has them all.
      await t.sendBatch(conn, [bytes('u1'), bytes('u2')], { unconfirmed: true });
      await t.send(conn, bytes('m100'));
      expect(JSON.parse(await ask('messages?'))).toEqual({ received: 103 });
      expect(await ask('ping')).toBe('ping');
      const err = await rejectsWith(t.request(conn, bytes('fail')), 'ERR_REMOTE');
      expect(err.message).toBe('handler failed');
      const many = await Promise.all(Array.from({ length: 50 }, (_, i) => ask(`n${i}`)));
      expect(many).toEqual(Array.from({ length: 50 }, (_, i) => `n${i}`));

      // Its messages reach us, and our ACKs reach it.
      expect(await ask('push')).toBe('acked 10');
      const got: string[] = [];
      for (let i = 0; i < 10; i++) got.push(text(await conn.receive({ timeoutMs: 5000 })));
      expect(got).toEqual(Array.from({ length: 10 }, (_, i) => `s${i}`));

      // Hostile channels from the server are stopped one by one; the connection goes on.
      expect(JSON.parse(await ask('hostile'))).toEqual({ garbage: 1, huge: 2 });
      expect(await ask('still here')).toBe('still here');

      // GOAWAY (on the control stream, so it may land just after the answer on its own
      // stream): from then on nothing new starts on this connection.
      expect(await ask('goaway')).toBe('going away');
      let refused: unknown;
      for (let i = 0; i < 50 && !refused; i++) {
        refused = await t.request(conn, bytes('late')).then(
          () => sleep(20),
          (e: unknown) => e,
        );
      }
      expect((refused as QuicwireError).code).toBe('ERR_CONNECTION_CLOSED');
    } finally {
      child.kill();
    }
  });
});
