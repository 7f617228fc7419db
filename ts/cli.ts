#!/usr/bin/env node
// The `quicwire` command: serve, bus, send, request, bench, top and cert, over the public API.
// Exit codes: 0 done, 1 the operation failed (network, TLS, timeout), 2 bad usage.

import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { SingleBar } from 'cli-progress';
import {
  backend,
  type Connection,
  collectMetrics,
  generateDevCert,
  initWasm,
  QuicBus,
  QuicServer,
  QuicTransport,
  QuicwireError,
  type ServerOptions,
} from './index.js';
import { top } from './top.js';

const HELP = `quicwire: QUIC message transport (TLS 1.3, one stream per request, pooled connections)

Usage:
  quicwire serve [--host H] [--port P] (--dev-cert | --cert FILE --key FILE) [--quiet]
                 [--tcp] [--webtransport PATH] [--metrics HOST:PORT]
      Listen; print each message received as a JSON line; answer requests with their body.
      --tcp also takes QUIC over TCP (clients behind a UDP block, browsers);
      --webtransport takes browsers' WebTransport sessions at https://HOST:PORT/PATH (with
      --dev-cert, a certificate valid 14 days whose hash it prints, for the page's
      serverCertificateHashes); --metrics serves Prometheus metrics at
      http://HOST:PORT/metrics.
  quicwire bus [--host H] [--port P] (--dev-cert | --cert FILE --key FILE) [--quiet]
               [--balance round-robin|least-loaded] [--tcp] [--metrics HOST:PORT]
      A message bus for agents (\`Agent.connect\`): routes by name and subject; prints
      each agent joining and leaving as a JSON line.
  quicwire send <host:port> <json> [--count N] [--ca FILE | --insecure]
      Send a message; exits once the server has it.
  quicwire request <host:port> <json> [--timeout MS] [--ca FILE | --insecure]
      Send a request and print the reply as JSON.
  quicwire bench <host:port> [--streams N] [--duration S] [--size BYTES] [--ca FILE | --insecure]
      N requests in flight for S seconds against a \`quicwire serve\`; prints a summary table.
  quicwire top <url> [--interval MS] [--frames N]
      A live view of the endpoints whose metrics <url> serves (\`serve --metrics\`, or an
      application's collectMetrics registry): connections, streams, RTT, and rates of
      messages, requests, bytes and lost packets. --frames: stop after N refreshes.
  quicwire cert --out DIR [--name NAME]...
      Write a self-signed certificate (cert.pem, key.pem) for local development.

Options:
  --backend native|wasm   the engine (default: the native addon, else wasm)
  -h, --help              this text
  -v, --version           the version

Exit codes: 0 success, 1 the operation failed, 2 bad usage.

Example:
  quicwire serve --port 4433 --dev-cert        # prints the certificate path for --ca
  quicwire request 127.0.0.1:4433 '{"hello":"world"}' --ca /tmp/quicwire-.../cert.pem`;

class UsageError extends Error {}

const OPTIONS = {
  host: { type: 'string' },
  port: { type: 'string' },
  'dev-cert': { type: 'boolean' },
  cert: { type: 'string' },
  key: { type: 'string' },
  quiet: { type: 'boolean' },
  tcp: { type: 'boolean' },
  webtransport: { type: 'string' },
  metrics: { type: 'string' },
  balance: { type: 'string' },
  interval: { type: 'string' },
  frames: { type: 'string' },
  ca: { type: 'string' },
  insecure: { type: 'boolean' },
  count: { type: 'string' },
  timeout: { type: 'string' },
  streams: { type: 'string' },
  duration: { type: 'string' },
  size: { type: 'string' },
  out: { type: 'string' },
  name: { type: 'string', multiple: true },
  backend: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'v' },
} as const;

type Flags = ReturnType<typeof parse>['values'];

function parse(argv: string[]) {
  try {
    return parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

function integer(name: string, value: string | undefined, fallback: number, min = 1): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min)
    throw new UsageError(`--${name} must be an integer >= ${min}, got ${value}`);
  return n;
}

function target(value: string | undefined, lowest = 1): { host: string; port: number } {
  if (!value) throw new UsageError('missing <host:port>, e.g. 127.0.0.1:4433');
  const i = value.lastIndexOf(':');
  const host = value.slice(0, i).replace(/^\[|\]$/g, '');
  const port = Number(value.slice(i + 1));
  if (i <= 0 || !host || !Number.isInteger(port) || port < lowest || port > 65535) {
    throw new UsageError(`expected <host:port> such as 127.0.0.1:4433 or [::1]:4433, got ${value}`);
  }
  return { host, port };
}

function json(value: string | undefined): unknown {
  if (value === undefined) throw new UsageError(`missing <json>, e.g. '{"hello":"world"}'`);
  try {
    return JSON.parse(value);
  } catch (err) {
    throw new UsageError(
      `<json> is not valid JSON (${(err as Error).message}); quote it for your shell: '{"hello":"world"}'`,
    );
  }
}

function readPem(flag: string, path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new UsageError(`--${flag} ${path}: ${(err as Error).message}`);
  }
}

function client(flags: Flags): QuicTransport {
  if (flags.insecure && flags.ca) throw new UsageError('use --ca or --insecure, not both');
  return new QuicTransport({
    ...(flags.ca ? { ca: readPem('ca', flags.ca) } : {}),
    ...(flags.insecure ? { insecure: true } : {}),
  });
}

/** What `serve` and `bus` listen with: address, certificate (--dev-cert, or --cert and
 *  --key), --tcp and --webtransport. */
function listenOptions(flags: Flags, command: string): ServerOptions {
  return {
    host: flags.host ?? '127.0.0.1',
    port: integer('port', flags.port, 4433, 0),
    ...serverCert(flags, command),
    tcp: flags.tcp ?? false,
    ...(flags.webtransport !== undefined && { webTransport: { path: flags.webtransport } }),
  };
}

function serverCert(flags: Flags, command: string): { cert: string; key: string } {
  if (flags['dev-cert']) {
    if (flags.cert || flags.key) throw new UsageError('use --dev-cert or --cert/--key, not both');
    // Browsers trust a certificate by its hash only when it is valid for 14 days at most.
    const browsers = flags.webtransport !== undefined;
    const dev = generateDevCert(['localhost', '127.0.0.1', '::1'], browsers ? { validDays: 14 } : {});
    const dir = mkdtempSync(join(tmpdir(), 'quicwire-'));
    writeFileSync(join(dir, 'cert.pem'), dev.cert);
    console.error(`dev certificate: ${join(dir, 'cert.pem')} (pass it to clients as --ca)`);
    if (browsers) console.error(`dev certificate sha-256 (serverCertificateHashes): ${dev.hash}`);
    return { cert: dev.cert, key: dev.key };
  }
  if (flags.cert && flags.key) return { cert: readPem('cert', flags.cert), key: readPem('key', flags.key) };
  throw new UsageError(
    `${command} needs a certificate: --dev-cert, or --cert FILE --key FILE (see \`quicwire cert\`)`,
  );
}

/** Until Ctrl-C or SIGTERM. */
function stopped(): Promise<void> {
  return new Promise<void>((done) => {
    process.once('SIGINT', done);
    process.once('SIGTERM', done);
  });
}

function address(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

async function serve(flags: Flags): Promise<number> {
  const options = listenOptions(flags, 'serve');
  const metricsAt = flags.metrics === undefined ? undefined : target(flags.metrics, 0);
  const server = await QuicServer.listen(options);
  const scrape = metricsAt && (await serveMetrics(server, metricsAt));
  let messages = 0;
  let requests = 0;
  server.onMessage((message, peer) => {
    messages++;
    if (!flags.quiet) console.log(JSON.stringify({ from: peer.peer, message }));
  });
  server.onRequest((message) => {
    requests++;
    return message;
  });
  console.error(`listening on ${address(server.host, server.port)} (${backend()} engine); Ctrl-C stops`);
  if (flags.webtransport !== undefined) {
    console.error(`webtransport at https://${address(server.host, server.port)}${flags.webtransport}`);
  }
  await stopped();
  scrape?.close();
  await server.close({ graceful: true });
  // Counted here: the server's stats cover the connections open now, not the ones gone.
  console.error(`closed after ${messages} messages and ${requests} requests`);
  return 0;
}

async function bus(flags: Flags): Promise<number> {
  const balance = flags.balance ?? 'round-robin';
  if (balance !== 'round-robin' && balance !== 'least-loaded') {
    throw new UsageError(`--balance must be round-robin or least-loaded, got ${balance}`);
  }
  if (flags.webtransport !== undefined) throw new UsageError('--webtransport is for serve only');
  const options = listenOptions(flags, 'bus');
  const metricsAt = flags.metrics === undefined ? undefined : target(flags.metrics, 0);
  const b = await QuicBus.listen({ ...options, balance });
  const scrape = metricsAt && (await serveMetrics(b.server, metricsAt));
  if (!flags.quiet) {
    b.onJoin(({ name }) => console.log(JSON.stringify({ joined: name })));
    b.onLeave(({ name }) => console.log(JSON.stringify({ left: name })));
  }
  console.error(`bus on ${address(b.host, b.port)} (${backend()} engine); Ctrl-C stops`);
  await stopped();
  scrape?.close();
  await b.close({ graceful: true });
  return 0;
}

async function watch(flags: Flags, args: string[]): Promise<number> {
  const [url] = args;
  if (!url) throw new UsageError('missing <url>, e.g. http://127.0.0.1:9464/metrics');
  if (!/^https?:\/\//.test(url)) throw new UsageError(`<url> must be http(s)://…, got ${url}`);
  const interval = integer('interval', flags.interval, 1000, 10);
  const frames = integer('frames', flags.frames, 0, 0);
  try {
    await top(url, interval, frames, (text) => process.stdout.write(text));
  } catch (err) {
    console.error(`top: ${(err as Error).message}`);
    return 1;
  }
  return 0;
}

/** Prometheus metrics of `server` at http://host:port/metrics (port 0: a free one). */
async function serveMetrics(server: QuicServer, at: { host: string; port: number }): Promise<Server> {
  const { Registry } = await import('prom-client').catch(() => {
    throw new UsageError('--metrics needs prom-client: npm install prom-client');
  });
  const registry = new Registry();
  await collectMetrics(server, { registry });
  const http = createServer((req, res) => {
    if (req.url !== '/metrics') {
      res.writeHead(404).end('metrics are at /metrics\n');
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
      (err: Error) => res.writeHead(500).end(err.message),
    );
  });
  await new Promise<void>((resolve, reject) => {
    http.once('error', (err) => reject(new UsageError(`--metrics ${at.host}:${at.port}: ${err.message}`)));
    http.listen(at.port, at.host, () => resolve());
  });
  const { port } = http.address() as AddressInfo;
  console.error(`metrics at http://${at.host.includes(':') ? `[${at.host}]` : at.host}:${port}/metrics`);
  return http;
}

/** Connects to `addr` (host:port) with the TLS flags, runs `use`, and closes. */
async function withConnection<T>(
  flags: Flags,
  addr: string | undefined,
  use: (conn: Connection) => Promise<T>,
): Promise<T> {
  const { host, port } = target(addr);
  const t = client(flags);
  try {
    return await use(await t.connect(host, port));
  } finally {
    await t.close();
  }
}

async function send(flags: Flags, args: string[]): Promise<number> {
  const message = json(args[1]);
  const count = integer('count', flags.count, 1);
  await withConnection(flags, args[0], async (conn) => {
    await conn.sendBatch(Array.from({ length: count }, () => message));
    console.error(`delivered ${count} message${count === 1 ? '' : 's'} to ${conn.peer}`);
  });
  return 0;
}

async function request(flags: Flags, args: string[]): Promise<number> {
  const message = json(args[1]);
  const timeoutMs = integer('timeout', flags.timeout, 10_000);
  const reply = await withConnection(flags, args[0], (conn) => conn.request(message, { timeoutMs }));
  console.log(JSON.stringify(reply));
  return 0;
}

function percentile(sorted: number[], p: number): number {
  return sorted.length === 0
    ? 0
    : (sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] as number);
}

async function bench(flags: Flags, args: string[]): Promise<number> {
  const streams = integer('streams', flags.streams, 32);
  const seconds = integer('duration', flags.duration, 10);
  const size = integer('size', flags.size, 1024, 0);
  const payload = new Uint8Array(size).fill(7);
  const latencies: number[] = [];
  let errors = 0;
  let firstError: unknown;
  await withConnection(flags, args[0], async (conn) => {
    const started = performance.now();
    const end = started + seconds * 1000;
    const bar = new SingleBar({
      format: 'bench [{bar}] {value}s/{total}s | {requests} requests | {rate} req/s | p50 {p50} ms',
      hideCursor: true,
      // A live line on a terminal; one line per second otherwise (CI logs, pipes).
      noTTYOutput: true,
      notTTYSchedule: 1000,
    });
    bar.start(seconds, 0, { requests: 0, rate: 0, p50: 0 });
    const progress = setInterval(() => {
      const elapsed = (performance.now() - started) / 1000;
      const recent = latencies.slice(-2000).sort((a, b) => a - b);
      bar.update(Math.min(seconds, Math.floor(elapsed)), {
        requests: latencies.length,
        rate: Math.round(latencies.length / elapsed),
        p50: percentile(recent, 0.5).toFixed(2),
      });
    }, 250);
    await Promise.all(
      Array.from({ length: streams }, async () => {
        while (performance.now() < end) {
          const t0 = performance.now();
          try {
            await conn.request(payload);
            latencies.push(performance.now() - t0);
          } catch (err) {
            errors++;
            firstError ??= err;
            if (!conn.isOpen) return;
          }
        }
      }),
    );
    clearInterval(progress);
    bar.update(seconds);
    bar.stop();
    const elapsed = (performance.now() - started) / 1000;
    const sorted = latencies.sort((a, b) => a - b);
    const rows: [string, string][] = [
      ['backend', backend()],
      ['streams in flight', String(streams)],
      ['payload', `${size} B`],
      ['requests', String(sorted.length)],
      ['requests/s', (sorted.length / elapsed).toFixed(0)],
      ['MB/s (both ways)', ((2 * sorted.length * size) / elapsed / 1e6).toFixed(2)],
      ['p50 ms', percentile(sorted, 0.5).toFixed(3)],
      ['p99 ms', percentile(sorted, 0.99).toFixed(3)],
      ['max ms', (sorted.at(-1) ?? 0).toFixed(3)],
      ['errors', String(errors)],
    ];
    const width = Math.max(...rows.map(([k]) => k.length));
    for (const [k, v] of rows) console.log(`${k.padEnd(width)}  ${v}`);
  });
  if (errors > 0) throw firstError;
  return 0;
}

function cert(flags: Flags): number {
  if (!flags.out) throw new UsageError('cert needs --out DIR');
  const names = flags.name ?? ['localhost', '127.0.0.1', '::1'];
  const dev = generateDevCert(names);
  const dir = resolve(flags.out);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'cert.pem'), dev.cert);
  writeFileSync(join(dir, 'key.pem'), dev.key, { mode: 0o600 });
  console.log(`wrote ${join(dir, 'cert.pem')} and ${join(dir, 'key.pem')} for ${names.join(', ')}`);
  console.log(`serve with: quicwire serve --cert ${join(dir, 'cert.pem')} --key ${join(dir, 'key.pem')}`);
  console.log(`trust with: --ca ${join(dir, 'cert.pem')}`);
  return 0;
}

/** What to do about an error, beyond its message. */
function advice(err: QuicwireError): string {
  switch (err.code) {
    case 'ERR_TLS':
      return "the server's certificate was not trusted: pass --ca with its certificate (`quicwire serve --dev-cert` prints the path), or --insecure to skip the check while testing";
    case 'ERR_CONNECT_TIMEOUT':
    case 'ERR_CONNECTION_CLOSED':
      return 'is `quicwire serve` running at that address and port? QUIC is UDP: check firewalls for UDP too';
    case 'ERR_BACKEND_UNAVAILABLE':
      return 'reinstall quicwire for this platform, or pass --backend wasm';
    default:
      return '';
  }
}

async function main(argv: string[]): Promise<number> {
  const { values: flags, positionals } = parse(argv);
  if (flags.version) {
    const pkg = createRequire(import.meta.url)('../package.json') as { version: string };
    console.log(pkg.version);
    return 0;
  }
  const [command, ...args] = positionals;
  if (flags.help || command === undefined || command === 'help') {
    console.log(HELP);
    return command === undefined && !flags.help ? 2 : 0;
  }
  if (flags.backend !== undefined && flags.backend !== 'native' && flags.backend !== 'wasm') {
    throw new UsageError(`--backend must be native or wasm, got ${flags.backend}`);
  }
  await initWasm(undefined, flags.backend ? { backend: flags.backend } : {});
  switch (command) {
    case 'serve':
      return serve(flags);
    case 'bus':
      return bus(flags);
    case 'send':
      return send(flags, args);
    case 'request':
      return request(flags, args);
    case 'bench':
      return bench(flags, args);
    case 'cert':
      return cert(flags);
    case 'top':
      return watch(flags, args);
    default:
      throw new UsageError(`unknown command ${JSON.stringify(command)}`);
  }
}

/** Exits once stdout and stderr are flushed: writes to pipes are asynchronous in Node. */
function exit(code: number): void {
  let pending = 2;
  const done = () => {
    if (--pending === 0) process.exit(code);
  };
  process.stdout.write('', done);
  process.stderr.write('', done);
}

main(process.argv.slice(2)).then(
  (code) => exit(code),
  (err: unknown) => {
    if (err instanceof UsageError) {
      console.error(`quicwire: ${err.message}\nRun \`quicwire --help\` for usage.`);
      return exit(2);
    }
    if (err instanceof QuicwireError) {
      const hint = advice(err);
      console.error(`quicwire: ${err.code}: ${err.message}${hint ? `\n  ${hint}` : ''}`);
    } else {
      console.error(`quicwire: ${String(err)}`);
    }
    exit(1);
  },
);
