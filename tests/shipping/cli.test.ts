// The `quicwire` command, spawned as users run it (node dist/cli.js, built by `npm run build`).

import { type ChildProcess, spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '../../ts/index.js';

const cli = new URL('../../dist/cli.js', import.meta.url).pathname;
const servers: ChildProcess[] = [];

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [cli, ...args], { env: { ...process.env, QUICWIRE_BACKEND: '' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Starts `quicwire serve` on a free port; resolves once it listens. */
interface Served {
  child: ChildProcess;
  port: number;
  /** The dev certificate's path, with --dev-cert. */
  ca: string | undefined;
  out: () => string;
  err: () => string;
}

function serve(args: string[], command = 'serve'): Promise<Served> {
  const child = spawn(process.execPath, [cli, command, '--port', '0', ...args]);
  servers.push(child);
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d) => {
    stdout += d;
  });
  return new Promise((resolve, reject) => {
    child.stderr?.on('data', (d) => {
      stderr += d;
      const port = /(?:listening|bus) on 127\.0\.0\.1:(\d+)/.exec(stderr)?.[1];
      if (port)
        resolve({
          child,
          port: Number(port),
          ca: /dev certificate: (\S+)/.exec(stderr)?.[1],
          out: () => stdout,
          err: () => stderr,
        });
    });
    child.on('close', (code) => reject(new Error(`serve exited ${code}: ${stderr}`)));
  });
}

beforeAll(() => {
  if (!existsSync(cli)) throw new Error('dist/cli.js is missing: run `npm run build` first');
});

afterEach(() => {
  while (servers.length > 0) servers.pop()?.kill('SIGKILL');
});

describe('quicwire CLI', () => {
  it('prints help, and exits 2 with a pointer to it on bad usage', async () => {
    const help = await run(['--help']);
    expect(help.code).toBe(0);
    for (const cmd of ['serve', 'bus', 'send', 'request', 'bench', 'cert'])
      expect(help.stdout).toContain(`quicwire ${cmd}`);
    expect((await run([])).code).toBe(2);
    const cases: [string[], RegExp][] = [
      [['frobnicate'], /unknown command "frobnicate"/],
      [['send', '127.0.0.1:1', '{oops'], /not valid JSON.*quote it/],
      [['send', 'localhost', '{}'], /expected <host:port>/],
      [['request', '127.0.0.1:99999', '{}'], /expected <host:port>/],
      [['bench', '127.0.0.1:4433', '--streams', '0'], /--streams must be an integer >= 1/],
      [['serve'], /needs a certificate: --dev-cert, or --cert FILE --key FILE/],
      [['cert'], /--out DIR/],
      [['send', '--bogus'], /Unknown option '--bogus'/],
      [['send', '127.0.0.1:1', '{}', '--backend', 'java'], /--backend must be native or wasm/],
    ];
    for (const [args, message] of cases) {
      const r = await run(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stderr).toContain('quicwire --help');
    }
  });

  it('cert writes a pair that serve uses and clients trust; send and request reach it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'quicwire-cli-'));
    const made = await run(['cert', '--out', dir]);
    expect(made.code).toBe(0);
    expect(readFileSync(join(dir, 'cert.pem'), 'utf8')).toContain('BEGIN CERTIFICATE');
    const server = await serve(['--cert', join(dir, 'cert.pem'), '--key', join(dir, 'key.pem')]);
    const addr = `127.0.0.1:${server.port}`;
    const ca = ['--ca', join(dir, 'cert.pem')];

    const sent = await run(['send', addr, '{"task":42}', '--count', '3', ...ca]);
    expect(sent.stderr).toContain(`delivered 3 messages to ${addr}`);
    expect(sent.code).toBe(0);
    // Delivered means the server has it: the lines are printed (or about to be).
    await expect.poll(() => server.out().trim().split('\n').length).toBe(3);
    expect(JSON.parse(server.out().split('\n')[0] as string).message).toEqual({ task: 42 });

    const reply = await run(['request', addr, '{"q":[1,2,3]}', ...ca]);
    expect(reply.code).toBe(0);
    expect(JSON.parse(reply.stdout)).toEqual({ q: [1, 2, 3] });

    const wasm = await run(['request', addr, '"via wasm"', '--backend', 'wasm', ...ca]);
    expect(wasm.code).toBe(0);
    expect(JSON.parse(wasm.stdout)).toBe('via wasm');

    // Ctrl-C / SIGTERM close the server gracefully, with a summary of what it served.
    server.child.kill('SIGTERM');
    const code = await new Promise((r) => server.child.on('close', r));
    expect(code).toBe(0);
    expect(server.err()).toContain('closed after 3 messages and 2 requests');
  });

  it('serve --webtransport takes browsers at a path, with a dev certificate they trust by hash', async () => {
    const server = await serve(['--dev-cert', '--quiet', '--webtransport', '/wt']);
    await expect
      .poll(() => /webtransport at (\S+)/.exec(server.err())?.[1])
      .toBe(`https://127.0.0.1:${server.port}/wt`);
    const hash = /serverCertificateHashes\): ([0-9a-f]{64})/.exec(server.err())?.[1];
    const x509 = new X509Certificate(readFileSync(server.ca as string));
    expect(hash).toBe(x509.fingerprint256.replaceAll(':', '').toLowerCase());
    expect(new Date(x509.validTo).getTime() - new Date(x509.validFrom).getTime()).toBe(14 * 86_400_000);
    // quicwire clients are served as before.
    const ca = ['--ca', server.ca as string];
    const answer = await run(['request', `127.0.0.1:${server.port}`, '"still quic"', ...ca]);
    expect(JSON.parse(answer.stdout)).toBe('still quic');
  });

  it('serve --metrics serves Prometheus metrics that count what it served', async () => {
    const server = await serve(['--dev-cert', '--quiet', '--tcp', '--metrics', '127.0.0.1:0']);
    await expect.poll(() => /metrics at (http:\S+)/.exec(server.err())?.[1]).toBeTruthy();
    const url = /metrics at (http:\S+)/.exec(server.err())?.[1] as string;
    const ca = ['--ca', server.ca as string];
    const addr = `127.0.0.1:${server.port}`;
    expect((await run(['request', addr, '"one"', ...ca])).code).toBe(0);
    expect((await run(['send', addr, '"two"', '--count', '4', ...ca])).code).toBe(0);
    const res = await fetch(url);
    expect(res.headers.get('content-type')).toContain('text/plain');
    const text = await res.text();
    expect(text).toContain('# TYPE quicwire_requests_total counter');
    expect(text).toMatch(/quicwire_requests_total\{role="server",direction="in"\} 1\n/);
    expect(text).toMatch(/quicwire_messages_total\{role="server",direction="in"\} 4\n/);
    expect(text).toMatch(/quicwire_request_duration_seconds_count\{role="server",side="answered"\} 1\n/);
    expect((await fetch(url.replace('/metrics', '/'))).status).toBe(404);
  });

  it('bus routes between agents and prints who joins and leaves', async () => {
    const bus = await serve(['--dev-cert', '--balance', 'least-loaded'], 'bus');
    const ca = readFileSync(bus.ca as string, 'utf8');
    const target = `127.0.0.1:${bus.port}`;
    const a = await Agent.connect(target, { ca, name: 'a' });
    const b = await Agent.connect(target, { ca, name: 'b' });
    b.onRequest((m) => ({ got: m }));
    expect(await a.request('b', 1)).toEqual({ got: 1 });
    await b.close();
    await expect
      .poll(() =>
        bus
          .out()
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l)),
      )
      .toEqual([{ joined: 'a' }, { joined: 'b' }, { left: 'b' }]);
    await a.close();
    bus.child.kill('SIGTERM');
    expect(await new Promise((r) => bus.child.on('close', r))).toBe(0);
    expect((await run(['bus', '--balance', 'random', '--dev-cert'])).code).toBe(2);
  });

  it('top shows a served endpoint live: connections and request rates from its metrics', async () => {
    const server = await serve(['--dev-cert', '--quiet', '--metrics', '127.0.0.1:0']);
    await expect.poll(() => /metrics at (http:\S+)/.exec(server.err())?.[1]).toBeTruthy();
    const url = /metrics at (http:\S+)/.exec(server.err())?.[1] as string;
    const addr = `127.0.0.1:${server.port}`;
    const [watched] = await Promise.all([
      run(['top', url, '--interval', '300', '--frames', '5']),
      run(['bench', addr, '--duration', '2', '--streams', '4', '--ca', server.ca as string]),
    ]);
    expect(watched.code).toBe(0);
    expect(watched.stdout).toContain('quicwire top');
    const rows = watched.stdout
      .split('\n')
      .filter((line) => line.startsWith('role=server'))
      .map((line) => line.split(/\s+/));
    expect(rows).toHaveLength(5);
    // endpoint, conns, streams, rtt ms, msg/s in, msg/s out, req/s in, …
    expect(Math.max(...rows.map((r) => Number(r[1])))).toBe(1);
    expect(Math.max(...rows.map((r) => Number(r[6])))).toBeGreaterThan(0);
    const bad = await run(['top', 'not-a-url']);
    expect(bad.code).toBe(2);
  });

  it('fails with ERR_TLS and says what to do when the server is not trusted', async () => {
    const server = await serve(['--dev-cert', '--quiet']);
    const r = await run(['request', `127.0.0.1:${server.port}`, '{}']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/ERR_TLS/);
    expect(r.stderr).toContain('pass --ca');
    expect(server.ca && existsSync(server.ca)).toBe(true);
    const trusted = await run([
      'request',
      `127.0.0.1:${server.port}`,
      '{"ok":true}',
      '--ca',
      server.ca as string,
    ]);
    expect(trusted.code).toBe(0);
  });

  it('bench runs requests for the duration and prints a summary table', async () => {
    const server = await serve(['--dev-cert', '--quiet']);
    const r = await run([
      'bench',
      `127.0.0.1:${server.port}`,
      '--duration',
      '1',
      '--streams',
      '8',
      '--size',
      '256',
      '--ca',
      server.ca as string,
    ]);
    expect(r.stderr).not.toMatch(/quicwire: ERR/);
    expect(r.code).toBe(0);
    const table = Object.fromEntries(
      r.stdout
        .trim()
        .split('\n')
        .map((line) => line.split(/\s{2,}/) as [string, string]),
    );
    expect(Number(table.requests)).toBeGreaterThan(100);
    expect(table['streams in flight']).toBe('8');
    expect(table.errors).toBe('0');
    expect(Number(table['p99 ms'])).toBeGreaterThan(0);
  });
});
