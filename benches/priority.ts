// `npm run bench:priority`: what a request's priority buys while a bulk transfer fills the
// same connection. A server process answers requests and takes messages; a client process
// keeps a bulk transfer going on one connection and meanwhile sends 4 KiB requests one
// after another, at the bulk's priority (0) and above it (10). Two kinds of bulk:
// - messages: 64 KiB messages on the default lane, 4 MiB of them unacknowledged at all times
//   (one stream, which quinn's scheduler takes turns with);
// - uploads: 32 requests of 256 KiB in flight at all times (32 streams, so a request at the
//   same priority gets a 33rd of the turns).
// Two links: loopback (where the processes' CPU, not the link, limits the bulk) and, as
// root, 100 Mbit/s between two network namespaces (tests/lossy-link.ts; the link limits
// it, and the bulk queues in the sender). There CUBIC also fills the link's queue, which
// every packet waits in whatever its priority; the last cases run the client with BBR,
// which keeps that queue short. Reported per case: the requests' p50 and p99 latency, and the
// bulk's MB/s meanwhile. quicwire-native only: no peer has stream priorities.
//
//   npm run bench:priority -- [--quick] [--runs N] [--seconds S]
//
// Writes benches/results/priority.json, the priority table of docs/BENCHMARKS.md and
// README.md's table (benches/readme.ts); --quick: priority-quick.json only.
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { type CongestionControl, generateDevCert, QuicServer, QuicTransport } from '../dist/index.js';
import { type LossyLink, lossyLink, lossyLinkUnavailable } from '../tests/lossy-link.js';
import { median, saveReport, writeBlock } from './harness.js';
import { writeReadmeTable } from './readme.js';

/** An upload is answered with this, not echoed: the bulk goes one way. */
const RECEIVED = Uint8Array.of(1);
const REQUEST_BYTES = 4096;
const LINK_MBIT = 100;

/** Children still running: none outlives this process. */
const children = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of children) child.kill('SIGTERM');
});

const { values: args } = parseArgs({
  options: {
    serve: { type: 'boolean', default: false },
    client: { type: 'string' },
    quick: { type: 'boolean', default: false },
    runs: { type: 'string' },
    seconds: { type: 'string' },
  },
});

type Bulk = 'none' | 'messages' | 'uploads';
type Link = 'loopback' | `${number} Mbit/s`;
interface Figures {
  p50ms: number;
  p99ms: number;
  requests: number;
  bulkMBps: number;
}

if (args.serve) await serve();
else if (args.client) await client(JSON.parse(args.client));
else await main();

async function serve(): Promise<void> {
  const server = await QuicServer.listen({
    host: process.env.BENCH_HOST as string,
    cert: process.env.BENCH_CERT as string,
    key: process.env.BENCH_KEY as string,
    encodings: ['raw'],
  });
  server.onMessage(() => {});
  server.onRequest((body) => ((body as Uint8Array).length > REQUEST_BYTES ? RECEIVED : body));
  console.log(`READY ${server.port}`);
  process.once('SIGTERM', () => void server.close().finally(() => process.exit(0)));
}

async function main(): Promise<void> {
  const quick = args.quick ?? false;
  const runs = Number(args.runs ?? (quick ? 1 : 3));
  const seconds = Number(args.seconds ?? (quick ? 1 : 5));
  const cases: [Bulk, number, CongestionControl][] = [
    ['none', 0, 'cubic'],
    ['messages', 0, 'cubic'],
    ['messages', 10, 'cubic'],
    ['uploads', 0, 'cubic'],
    ['uploads', 10, 'cubic'],
    ['uploads', 0, 'bbr'],
    ['uploads', 10, 'bbr'],
  ];
  const links: Link[] = ['loopback'];
  const unavailable = lossyLinkUnavailable();
  if (unavailable) console.log(`no ${LINK_MBIT} Mbit/s link: ${unavailable}`);
  else links.push(`${LINK_MBIT} Mbit/s`);

  type Row = {
    link: Link;
    bulk: Bulk;
    priority: number;
    cc: CongestionControl;
    median: Figures;
    runs: Figures[];
  };
  const rows: Row[] = [];
  for (const link of links) {
    const net = link === 'loopback' ? undefined : lossyLink(0, { rateMbit: LINK_MBIT });
    try {
      const host = net?.serverIp ?? '127.0.0.1';
      const tls = generateDevCert([host]);
      const env = { ...process.env, BENCH_HOST: host, BENCH_CERT: tls.cert, BENCH_KEY: tls.key };
      const server = self(net, 'server', ['--serve'], env);
      const [ready] = (await once(
        createInterface({ input: server.stdout as NodeJS.ReadableStream }),
        'line',
      )) as [string];
      const port = Number(ready.split(' ')[1]);
      for (const [bulk, priority, cc] of cases) {
        const done: Figures[] = [];
        for (let r = 0; r < runs; r++) {
          const job = JSON.stringify({ host, port, bulk, priority, cc, seconds });
          const c = self(net, 'client', ['--client', job], env);
          const lines = createInterface({ input: c.stdout as NodeJS.ReadableStream });
          const [out] = (await once(lines, 'line')) as [string];
          done.push(JSON.parse(out) as Figures);
        }
        const pick = (k: keyof Figures) => median(done.map((f) => f[k]));
        const m: Figures = {
          p50ms: pick('p50ms'),
          p99ms: pick('p99ms'),
          requests: pick('requests'),
          bulkMBps: pick('bulkMBps'),
        };
        rows.push({ link, bulk, priority, cc, median: m, runs: done });
        console.log(
          `${link.padEnd(12)} bulk ${bulk.padEnd(8)} ${cc.padEnd(5)} priority ${String(priority).padStart(2)}  p50 ${m.p50ms.toFixed(2)} ms  p99 ${m.p99ms.toFixed(2)} ms  bulk ${m.bulkMBps.toFixed(1)} MB/s`,
        );
      }
      server.kill('SIGTERM');
      await once(server, 'exit');
    } finally {
      net?.close();
    }
  }

  const report = saveReport('priority', 'bench:priority', quick, { runs, seconds, rows });
  if (!quick) {
    const p99At = (link: Link, bulk: Bulk) =>
      rows.find((r) => r.link === link && r.bulk === bulk && r.priority === 0 && r.cc === 'cubic')?.median
        .p99ms;
    writeBlock('docs/BENCHMARKS.md', 'priority', 'npm run bench:priority', [
      `Measured with \`${report.command}\` on ${report.machine.cpus} × ${report.machine.cpu}, Node ${report.machine.node}, ${report.date.slice(0, 10)}: median of ${runs} runs of ${seconds} s, quicwire-native, server and client in their own processes. Every figure: \`benches/results/priority.json\`.`,
      '',
      '| link | bulk on the connection | client congestion control | request priority | p50 ms | p99 ms | p99 vs priority 0 | bulk MB/s |',
      '| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |',
      ...rows.map(({ link, bulk, priority, cc, median: m }) => {
        const base = p99At(link, bulk);
        const ratio = base ? `${(m.p99ms / base).toFixed(2)}×` : '-';
        const moved = bulk === 'none' ? '-' : m.bulkMBps.toFixed(1);
        return `| ${link} | ${bulk} | ${cc} | ${priority} | ${m.p50ms.toFixed(2)} | ${m.p99ms.toFixed(2)} | ${ratio} | ${moved} |`;
      }),
    ]);
    console.log('wrote the priority table in docs/BENCHMARKS.md');
    writeReadmeTable();
  }
  process.exit(0);
}

/** This file in another process: on loopback, or in one of the link's namespaces. */
function self(
  net: LossyLink | undefined,
  side: 'server' | 'client',
  extra: string[],
  env: NodeJS.ProcessEnv,
) {
  const argv = ['--import', 'tsx', new URL(import.meta.url).pathname, ...extra];
  const options = { env, stdio: ['ignore', 'pipe', 'inherit'] as ('ignore' | 'pipe' | 'inherit')[] };
  const child: ChildProcess = net
    ? net.spawn(side, process.execPath, argv, options)
    : spawn(process.execPath, argv, options);
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/** One case, in a client process of its own: the bulk started and running, then requests
 *  at `priority` one after another for `seconds`. Prints its figures as one JSON line. */
async function client(job: {
  host: string;
  port: number;
  bulk: Bulk;
  priority: number;
  cc: CongestionControl;
  seconds: number;
}) {
  const { host, port, bulk, priority, cc, seconds } = job;
  const ca = process.env.BENCH_CERT as string;
  const t = new QuicTransport({ ca, encoding: 'raw', congestionControl: cc });
  const conn = await t.connect(host, port);
  let stop = false;
  let bulkBytes = 0;
  const bulkers: Promise<void>[] = [];
  if (bulk === 'messages') {
    const batch = Array.from({ length: 16 }, () => new Uint8Array(64 * 1024));
    for (let i = 0; i < 4; i++) {
      bulkers.push(
        (async () => {
          while (!stop) {
            await conn.sendBatch(batch);
            bulkBytes += 16 * 64 * 1024;
          }
        })(),
      );
    }
  } else if (bulk === 'uploads') {
    const upload = new Uint8Array(256 * 1024);
    for (let i = 0; i < 32; i++) {
      bulkers.push(
        (async () => {
          while (!stop) {
            await conn.request(upload, { timeoutMs: 120_000 });
            bulkBytes += upload.length;
          }
        })(),
      );
    }
  }
  // The bulk reaches its pace before anything is measured.
  await new Promise((r) => setTimeout(r, 1000));
  const body = new Uint8Array(REQUEST_BYTES);
  const latencies: number[] = [];
  const startBytes = bulkBytes;
  const start = performance.now();
  const end = start + seconds * 1000;
  while (performance.now() < end) {
    const t0 = performance.now();
    await conn.request(body, { priority, timeoutMs: 120_000 });
    latencies.push(performance.now() - t0);
  }
  const elapsed = (performance.now() - start) / 1000;
  const moved = bulkBytes - startBytes;
  stop = true;
  await Promise.allSettled(bulkers);
  await t.close();
  latencies.sort((a, b) => a - b);
  const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0;
  const figures: Figures = {
    p50ms: at(0.5),
    p99ms: at(0.99),
    requests: latencies.length,
    bulkMBps: moved / elapsed / 1e6,
  };
  console.log(JSON.stringify(figures));
  process.exit(0);
}
