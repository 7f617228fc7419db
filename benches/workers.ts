// `npm run bench:workers`: how a server's request rate grows with its threads. ServerWorkers
// with 1, 2 and N (the machine's cores) workers, each echoing raw 64-byte requests, against
// a load generator in Rust (crates/quicwire/examples/load.rs: 16 client endpoints, 64
// requests in flight each), and a plain QuicServer on the main thread as the baseline of
// one. Two handlers: a bare echo (the transport's own cost), and an echo after 50 µs of CPU
// work (a handler that does something). Figures: requests per second (medians of 3 runs),
// the ratio to one worker, and the server's CPU seconds per second (all its threads).
//
//   npm run bench:workers -- [--quick] [--runs 3]
//
// Writes benches/results/workers.json and the workers table of docs/BENCHMARKS.md; --quick:
// a moment each, workers-quick.json only.

import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { generateDevCert, QuicServer, ServerWorkers } from '../dist/index.js';
import { fmt, median, saveReport, writeBlock } from './harness.js';
import { echo } from './workers-app.js';

const { values: args } = parseArgs({
  options: { quick: { type: 'boolean', default: false }, runs: { type: 'string' } },
});
const quick = args.quick;
const runs = Number(args.runs ?? (quick ? 1 : 3));
const SECONDS = quick ? 0.5 : 5;
const CLIENTS = 16;
const IN_FLIGHT = 64;
const root = new URL('..', import.meta.url).pathname;
const LOAD = `${root}target/release/examples/load`;

interface Figures {
  perSecond: number;
  failed: number;
  /** The server process's CPU seconds per second of load. */
  cpu: number;
}

const tls = generateDevCert(['localhost', '127.0.0.1']);
const caFile = join(mkdtempSync(join(tmpdir(), 'quicwire-bench-')), 'ca.pem');
writeFileSync(caFile, tls.cert);

/** The load generator against `port`, with the server's CPU time measured around it. */
async function load(port: number): Promise<Figures> {
  const before = process.cpuUsage();
  const child = spawn(LOAD, [String(port), caFile, String(CLIENTS), String(IN_FLIGHT), String(SECONDS)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (d) => {
    out += d;
  });
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  if (code !== 0) throw new Error(`load generator exited with ${code}`);
  const used = process.cpuUsage(before);
  const r = JSON.parse(out) as { perSecond: number; failed: number; seconds: number };
  // The load runs a warm-up second before its timed ones; CPU is over the whole run.
  const cpu = (used.user + used.system) / 1e6 / (r.seconds + 1);
  return { perSecond: r.perSecond, failed: r.failed, cpu };
}

const configs: { name: string; workers: number }[] = [{ name: 'QuicServer (main thread)', workers: 0 }];
const cores = availableParallelism();
for (const n of [...new Set([1, 2, cores])].sort((a, b) => a - b))
  configs.push({ name: `${n} worker${n > 1 ? 's' : ''}`, workers: n });

const HANDLERS = [
  { name: 'echo', workUs: 0 },
  { name: 'echo after 50 µs of work', workUs: 50 },
];

type Result = { median: Figures; runs: Figures[] };
const results: Record<string, Record<string, Result>> = {};
for (const handler of HANDLERS) {
  const rows: Record<string, Result> = {};
  results[handler.name] = rows;
  for (const config of configs) {
    const all: Figures[] = [];
    for (let run = 0; run < runs; run++) {
      if (config.workers === 0) {
        const server = await QuicServer.listen({ cert: tls.cert, key: tls.key, encodings: ['raw'] });
        server.onRequest(echo(handler.workUs));
        all.push(await load(server.port));
        await server.close({ graceful: false });
      } else {
        const server = await ServerWorkers.listen({
          cert: tls.cert,
          key: tls.key,
          encodings: ['raw'],
          workers: config.workers,
          module: new URL('./workers-app.ts', import.meta.url),
          data: { workUs: handler.workUs },
        });
        all.push(await load(server.port));
        await server.close({ graceful: false });
      }
      console.log(
        `${handler.name}, ${config.name}, run ${run + 1}: ${fmt(all[all.length - 1]?.perSecond ?? 0)} req/s`,
      );
    }
    const pick = (k: keyof Figures) => median(all.map((f) => f[k]));
    rows[config.name] = {
      median: { perSecond: pick('perSecond'), failed: pick('failed'), cpu: pick('cpu') },
      runs: all,
    };
  }
}

const lines = [
  `Medians of ${runs} runs (\`npm run bench:workers\`, ${new Date().toISOString().slice(0, 10)}), ${cores} cores shared by the server and the load generator.`,
  '',
  '| handler | server | requests/s | vs 1 worker | server CPU (cores) |',
  '| --- | --- | ---: | ---: | ---: |',
  ...Object.entries(results).flatMap(([handler, rows]) => {
    const one = rows['1 worker']?.median.perSecond ?? Number.NaN;
    return Object.entries(rows).map(
      ([name, r]) =>
        `| ${handler} | ${name} | ${fmt(r.median.perSecond)} | ${(r.median.perSecond / one).toFixed(2)}x | ${r.median.cpu.toFixed(2)} |`,
    );
  }),
];
console.log(lines.join('\n'));
const report = saveReport('workers', 'bench:workers', quick, {
  clients: CLIENTS,
  inFlight: IN_FLIGHT,
  seconds: SECONDS,
  payload: 64,
  results,
});
if (!quick) writeBlock('docs/BENCHMARKS.md', 'workers', report.command, lines);
