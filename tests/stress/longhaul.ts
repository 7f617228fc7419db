// The long haul: what a long-lived process does to quicwire's id spaces, per backend:
// - requests: one echo server and one client in one process; one connection, raw encoding,
//   256 in flight, every answer checked against its question (each request carries its
//   own index);
// - connects: one QuicTransport dialing and disconnecting again and again (over a few
//   servers at once, since a transport pools one connection per host:port), every
//   connection a new id that answers a request (as a reconnecting client does, so it
//   resumes its TLS session). The servers run in a process of their own, as they would
//   in production, so that the client's and the server's halves of each handshake run on
//   cores of their own.
//
//   npm run longhaul -- [--requests 3000000] [--connects 3000000] [--backends native,wasm]
//   npm run longhaul -- --quick     (CI: 2,200,000 requests, past the old 2^21 limit; 20,000 connects)
//
// Each backend runs in a process of its own. Prints a line per 500,000 and the rates; exits
// non-zero when anything failed.

import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import {
  type Connection,
  generateDevCert,
  initWasm,
  QuicServer,
  QuicTransport,
  QuicwireError,
} from '../../ts/index.js';

interface Result {
  backend: string;
  what: 'requests' | 'connects';
  ok: number;
  failed: number;
  seconds: number;
  perSec: number;
  firstFailure?: string | undefined;
  rssMiB: number;
}

const IN_FLIGHT = 256;
const SERVERS = 8;
/** Stop a run after this many failures: past an outage each one waits for a timeout. */
const GIVE_UP = 1000;
const PROGRESS = 500_000;

const cert = () => generateDevCert(['127.0.0.1']);

function describe(err: unknown): string {
  return err instanceof QuicwireError ? `${err.code} ${err.message}` : String(err);
}

async function requests(total: number, log: (s: string) => void): Promise<Omit<Result, 'backend'>> {
  const { cert: pem, key } = cert();
  const server = await QuicServer.listen({ host: '127.0.0.1', port: 0, cert: pem, key, encodings: ['raw'] });
  server.onRequest(async (m) => m);
  const t = new QuicTransport({ ca: pem, encoding: 'raw' });
  const conn = await t.connect('127.0.0.1', server.port);
  let next = 0;
  let ok = 0;
  let failed = 0;
  let firstFailure: string | undefined;
  const t0 = performance.now();
  const worker = async () => {
    while (next < total && failed < GIVE_UP) {
      const i = next++;
      const body = new Uint8Array(8);
      new DataView(body.buffer).setFloat64(0, i);
      try {
        const answer = (await t.request(conn, body)) as Uint8Array;
        const got =
          answer.length === 8 ? new DataView(answer.buffer, answer.byteOffset, 8).getFloat64(0) : NaN;
        if (got !== i) throw new Error(`request ${i} was answered with ${got}`);
        ok++;
      } catch (err) {
        failed++;
        firstFailure ??= `request ${i}: ${describe(err)}`;
      }
      const done = ok + failed;
      if (done % PROGRESS === 0) {
        const s = (performance.now() - t0) / 1000;
        log(`${done} requests, ${failed} failed, ${Math.round(done / s)} req/s`);
      }
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
  const seconds = (performance.now() - t0) / 1000;
  await t.close();
  await server.close({ graceful: false });
  return { what: 'requests', ok, failed, seconds, perSec: ok / seconds, firstFailure, rssMiB: rss() };
}

/** The connect run's echo servers, in this process until stdin closes: prints `{ ca, ports }`. */
async function serve(): Promise<void> {
  await initWasm();
  const { cert: pem, key } = cert();
  const servers = await Promise.all(
    Array.from({ length: SERVERS }, async () => {
      const s = await QuicServer.listen({ host: '127.0.0.1', port: 0, cert: pem, key });
      s.onRequest(async (m) => m);
      return s;
    }),
  );
  process.stdout.write(`${JSON.stringify({ ca: pem, ports: servers.map((s) => s.port) })}\n`);
  process.stdin.resume();
  await new Promise((resolve) => process.stdin.on('end', resolve));
  await Promise.all(servers.map((s) => s.close({ graceful: false })));
}

/** Starts `serve` in a child process with this backend; resolves once its servers listen. */
function spawnServers(): Promise<{ ca: string; ports: number[]; stop: () => void }> {
  const script = fileURLToPath(import.meta.url);
  const child = spawn(process.execPath, ['--import', 'tsx', script, '--serve'], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  let out = '';
  return new Promise((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      out += d;
      if (!out.includes('\n')) return;
      const { ca, ports } = JSON.parse(out) as { ca: string; ports: number[] };
      resolve({ ca, ports, stop: () => child.stdin.end() });
    });
    child.on('exit', (code) => reject(new Error(`the server process exited with ${code}`)));
  });
}

async function connects(total: number, log: (s: string) => void): Promise<Omit<Result, 'backend'>> {
  const servers = await spawnServers();
  const t = new QuicTransport({ ca: servers.ca });
  let next = 0;
  let ok = 0;
  let failed = 0;
  let firstFailure: string | undefined;
  const t0 = performance.now();
  const loop = async (port: number) => {
    let newest = 0;
    while (next < total && failed < GIVE_UP) {
      const i = next++;
      let conn: Connection | undefined;
      try {
        conn = await t.connect('127.0.0.1', port);
        // A loop's ids only grow (one counter for the process): an old one back is reuse.
        if (conn.id <= newest) throw new Error(`connection ${i} got id ${conn.id}, not above ${newest}`);
        newest = conn.id;
        if ((await t.request(conn, i)) !== i) throw new Error(`connection ${i} answered wrong`);
        ok++;
      } catch (err) {
        failed++;
        firstFailure ??= `connect ${i}: ${describe(err)}`;
      }
      // Counted before the disconnect's await, so that each count is reported once.
      const done = ok + failed;
      if (done % PROGRESS === 0) {
        const s = (performance.now() - t0) / 1000;
        log(`${done} connects, ${failed} failed, ${Math.round(done / s)} connects/s`);
      }
      if (conn) await t.disconnect(conn);
    }
  };
  await Promise.all(servers.ports.map(loop));
  const seconds = (performance.now() - t0) / 1000;
  const created = t.getPoolStats().created;
  if (created !== ok) {
    failed++;
    firstFailure ??= `the pool counts ${created} connections created, not ${ok}`;
  }
  await t.close();
  servers.stop();
  return { what: 'connects', ok, failed, seconds, perSec: ok / seconds, firstFailure, rssMiB: rss() };
}

function rss(): number {
  return Math.round(process.memoryUsage().rss / 2 ** 20);
}

/** One backend, in this process: results as JSON lines on stdout, progress on stderr. */
async function runOne(backend: string, counts: { requests: number; connects: number }): Promise<void> {
  await initWasm();
  const log = (s: string) => process.stderr.write(`  ${backend}: ${s}\n`);
  for (const run of [() => requests(counts.requests, log), () => connects(counts.connects, log)]) {
    const r = await run();
    process.stdout.write(`${JSON.stringify({ backend, ...r })}\n`);
  }
}

function spawnOne(backend: string, counts: { requests: number; connects: number }): Promise<Result[]> {
  const script = fileURLToPath(import.meta.url);
  const args = ['--import', 'tsx', script, '--one', backend, '--requests', `${counts.requests}`];
  args.push('--connects', `${counts.connects}`);
  const child = spawn(process.execPath, args, {
    env: { ...process.env, QUICWIRE_BACKEND: backend },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => {
    out += d;
  });
  return new Promise((resolve, reject) => {
    child.on('exit', (code) => {
      if (code !== 0) reject(new Error(`the ${backend} long haul exited with ${code}`));
      else
        resolve(
          out
            .trim()
            .split('\n')
            .map((l) => JSON.parse(l) as Result),
        );
    });
  });
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      requests: { type: 'string' },
      connects: { type: 'string' },
      backends: { type: 'string', default: 'native,wasm' },
      quick: { type: 'boolean', default: false },
      one: { type: 'string' },
      serve: { type: 'boolean', default: false },
    },
  });
  const counts = {
    requests: Number(values.requests ?? (values.quick ? 2_200_000 : 3_000_000)),
    connects: Number(values.connects ?? (values.quick ? 20_000 : 3_000_000)),
  };
  if (values.serve) return serve();
  if (values.one) return runOne(values.one, counts);
  const results: Result[] = [];
  for (const backend of values.backends.split(',')) {
    console.log(`== ${backend}: ${counts.requests} requests on one connection, ${counts.connects} connects`);
    results.push(...(await spawnOne(backend, counts)));
  }
  let bad = 0;
  for (const r of results) {
    const rate = r.what === 'requests' ? 'req/s' : 'connects/s';
    console.log(
      `${r.backend} ${r.what}: ${r.ok} ok, ${r.failed} failed in ${r.seconds.toFixed(1)} s, ` +
        `${Math.round(r.perSec)} ${rate}, rss ${r.rssMiB} MiB${r.firstFailure ? `; first failure: ${r.firstFailure}` : ''}`,
    );
    bad += r.failed;
  }
  if (bad > 0) process.exitCode = 1;
}

await main();
