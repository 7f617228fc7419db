// `npm run bench:0rtt`: time from `connect` to the first reply, for a client that makes a
// full handshake, one that resumes a session (1-RTT), and one that resumes with 0-RTT
// (`earlyData`, the request marked idempotent). The server runs in a process of its own;
// the client reaches it directly on loopback, and through a relay that holds every datagram
// for 10 ms each way (a 20 ms round trip, as between two cities), where round trips, not
// CPU, decide.
//
//   npm run bench:0rtt -- [--quick] [--runs N]
//
// Writes benches/results/zero-rtt.json, the 0-RTT table of docs/BENCHMARKS.md and
// README.md's table (benches/readme.ts); --quick: zero-rtt-quick.json only.
import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { generateDevCert, QuicServer, QuicTransport } from '../dist/index.js';
import { saveReport, writeBlock } from './harness.js';
import { writeReadmeTable } from './readme.js';

const HOST = '127.0.0.1';
const DELAY_MS = 10;

const { values: args } = parseArgs({
  options: {
    serve: { type: 'boolean', default: false },
    quick: { type: 'boolean', default: false },
    runs: { type: 'string' },
  },
});

type Way = 'full handshake' | 'resumed, 1-RTT' | 'resumed, 0-RTT';
interface Figures {
  p50ms: number;
  p99ms: number;
}

if (args.serve) {
  const server = await QuicServer.listen({
    host: HOST,
    cert: process.env.BENCH_CERT as string,
    key: process.env.BENCH_KEY as string,
    earlyData: true,
  });
  server.onRequest((m) => m);
  console.log(`READY ${server.port}`);
  process.once('SIGTERM', () => void server.close().finally(() => process.exit(0)));
} else {
  await main();
}

async function main(): Promise<void> {
  const quick = args.quick ?? false;
  const runs = Number(args.runs ?? (quick ? 5 : 200));
  const tls = generateDevCert([HOST]);
  const server = spawn(process.execPath, ['--import', 'tsx', new URL(import.meta.url).pathname, '--serve'], {
    env: { ...process.env, BENCH_CERT: tls.cert, BENCH_KEY: tls.key },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  process.on('exit', () => server.kill('SIGTERM'));
  const [ready] = (await once(
    createInterface({ input: server.stdout as NodeJS.ReadableStream }),
    'line',
  )) as [string];
  const port = Number(ready.split(' ')[1]);
  const relay = await delayingRelay(port, DELAY_MS);

  const rows: { path: string; way: Way; median: Figures; samples: number }[] = [];
  for (const [path, target] of [
    ['loopback', port],
    [`${2 * DELAY_MS} ms round trip`, relay.port],
  ] as const) {
    for (const way of ['full handshake', 'resumed, 1-RTT', 'resumed, 0-RTT'] as Way[]) {
      const times = await measure(way, target, tls.cert, runs);
      times.sort((a, b) => a - b);
      const at = (q: number) => times[Math.min(times.length - 1, Math.floor(q * times.length))] ?? 0;
      const m = { p50ms: at(0.5), p99ms: at(0.99) };
      rows.push({ path, way, median: m, samples: times.length });
      console.log(
        `${path.padEnd(20)} ${way.padEnd(16)} p50 ${m.p50ms.toFixed(2)} ms  p99 ${m.p99ms.toFixed(2)} ms`,
      );
    }
  }
  relay.close();

  const report = saveReport('zero-rtt', 'bench:0rtt', quick, { runs, rows });
  if (!quick) {
    const full = (path: string) =>
      rows.find((r) => r.path === path && r.way === 'full handshake')?.median.p50ms;
    writeBlock('docs/BENCHMARKS.md', 'zero-rtt', 'npm run bench:0rtt', [
      `Measured with \`${report.command}\` on ${report.machine.cpus} × ${report.machine.cpu}, Node ${report.machine.node}, ${report.date.slice(0, 10)}: ${runs} connections per row, quicwire-native, the server in its own process. Every figure: \`benches/results/zero-rtt.json\`.`,
      '',
      '| path | connection | connect to first reply, p50 ms | p99 ms | p50 vs full handshake |',
      '| --- | --- | ---: | ---: | ---: |',
      ...rows.map(({ path, way, median: m }) => {
        const base = full(path);
        const ratio = base ? `${(m.p50ms / base).toFixed(2)}×` : '-';
        return `| ${path} | ${way} | ${m.p50ms.toFixed(2)} | ${m.p99ms.toFixed(2)} | ${ratio} |`;
      }),
    ]);
    console.log('wrote the 0-RTT table in docs/BENCHMARKS.md');
    writeReadmeTable();
  }
  process.exit(0);
}

/** `runs` times: connect to `port`, send one request, time it until the reply, disconnect. */
async function measure(way: Way, port: number, ca: string, runs: number): Promise<number[]> {
  const earlyData = way === 'resumed, 0-RTT';
  const shared = way === 'full handshake' ? undefined : new QuicTransport({ ca, earlyData });
  if (shared) {
    // A first connection leaves the session ticket (and, for 0-RTT, the server's settings).
    await shared.request(await shared.connect(HOST, port), 'warm');
    await new Promise((r) => setTimeout(r, 50));
    await shared.disconnect(`${HOST}:${port}`);
  }
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = shared ?? new QuicTransport({ ca });
    const start = performance.now();
    const conn = await t.connect(HOST, port);
    await t.request(conn, i, { idempotent: true });
    times.push(performance.now() - start);
    // Close it, and let the next session ticket arrive before the next dial.
    await t.disconnect(conn);
    if (!shared) await t.close();
    await new Promise((r) => setTimeout(r, 2 * DELAY_MS + 5));
  }
  await shared?.close();
  return times;
}

/** A UDP relay on loopback that forwards each datagram after `delayMs`, both ways: one
 *  client at a time, to the server at `serverPort`. */
async function delayingRelay(serverPort: number, delayMs: number): Promise<{ port: number; close(): void }> {
  const front = createSocket('udp4');
  const back = createSocket('udp4');
  let client: { address: string; port: number } | undefined;
  front.on('message', (msg, from) => {
    client = { address: from.address, port: from.port };
    setTimeout(() => back.send(msg, serverPort, HOST), delayMs);
  });
  back.on('message', (msg) => {
    const to = client;
    if (to) setTimeout(() => front.send(msg, to.port, to.address), delayMs);
  });
  front.bind(0, HOST);
  back.bind(0, HOST);
  await Promise.all([once(front, 'listening'), once(back, 'listening')]);
  return {
    port: front.address().port,
    close: () => {
      front.close();
      back.close();
    },
  };
}
