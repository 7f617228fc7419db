// `npm run bench:loss`: request latency over a lossy link, quicwire against node:tls. The
// server and the client run in two network namespaces joined by veth, nftables dropping a
// share of the packets each side receives (tests/lossy-link.ts); over it, the concurrency
// scenario (100 requests in flight on one connection). On TCP one lost segment stalls every
// request behind it (head-of-line blocking); on QUIC only the stream it carried. quicwire
// runs once per congestion controller. Needs root.
//
//   npm run bench:loss -- [--quick] [--runs N] [--loss 0,2,5] [--only name,name]
//
// Writes benches/results/loss.json, the loss table of docs/BENCHMARKS.md and README.md's
// table (benches/readme.ts); --quick: loss-quick.json only.
import { parseArgs } from 'node:util';
import { generateDevCert } from '../dist/index.js';
import { lossyLink, lossyLinkUnavailable } from '../tests/lossy-link.js';
import { medians, runOnce, saveReport, writeBlock } from './harness.js';
import { writeReadmeTable } from './readme.js';
import type { Figures } from './scenarios.js';

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    runs: { type: 'string' },
    loss: { type: 'string', default: '0,2,5' },
    // quicwire-native runs CUBIC (the default); the newreno and bbr rows the other controllers.
    only: {
      type: 'string',
      default: 'quicwire-native,quicwire-native newreno,quicwire-native bbr,quicwire-wasm,node-tls',
    },
  },
});
const unavailable = lossyLinkUnavailable();
if (unavailable) {
  console.error(`bench:loss ${unavailable}`);
  process.exit(1);
}
const quick = args.quick ?? false;
const runs = Number(args.runs ?? (quick ? 1 : 3));
const rates = (args.loss ?? '').split(',').map(Number);
const names = (args.only ?? '').split(',');

type Row = { loss: number; name: string; median: Figures; runs: Figures[] };
const rows: Row[] = [];
for (const loss of rates) {
  for (const name of names) {
    const done: Figures[] = [];
    for (let r = 0; r < runs; r++) {
      // A fresh link per run: no run inherits another's queues or counters.
      const link = lossyLink(loss);
      try {
        const tls = generateDevCert(['localhost', link.serverIp]);
        done.push({ ...(await runOnce(name, 'concurrency', { tls, quick, link })), dropped: link.dropped() });
      } finally {
        link.close();
      }
    }
    const row = { loss, name, median: medians(done), runs: done };
    rows.push(row);
    const m = row.median;
    console.log(
      `${String(loss).padStart(2)} % loss  ${name.padEnd(24)} ${Math.round(m.requestsPerSec ?? 0)
        .toString()
        .padStart(
          7,
        )} req/s  p50 ${((m.p50us ?? 0) / 1000).toFixed(2)} ms  p99 ${((m.p99us ?? 0) / 1000).toFixed(2)} ms`,
    );
  }
}

const report = saveReport('loss', 'bench:loss', quick, { runs, rows });
if (!quick) writeTable();
process.exit(0);

/** Replaces docs/BENCHMARKS.md's loss block (between the loss markers) with this run's table. */
function writeTable(): void {
  const ms = (us: number | undefined) => (us === undefined ? '-' : (us / 1000).toFixed(2));
  const tlsAt = (loss: number) => rows.find((r) => r.loss === loss && r.name === 'node-tls')?.median;
  writeBlock('docs/BENCHMARKS.md', 'loss', 'npm run bench:loss', [
    `Measured with \`${report.command}\` on ${report.machine.cpus} × ${report.machine.cpu}, Node ${report.machine.node}, ${report.date.slice(0, 10)}: median of ${runs} runs. Every figure: \`benches/results/loss.json\`.`,
    '',
    '| loss each way | transport | req/s | p50 ms | p99 ms | p99 vs node-tls |',
    '| ---: | --- | ---: | ---: | ---: | ---: |',
    ...rows.map(({ loss, name, median: m }) => {
      const tls = tlsAt(loss);
      const ratio = tls?.p99us && m.p99us ? `${(m.p99us / tls.p99us).toFixed(2)}×` : '-';
      return `| ${loss} % | ${name} | ${Math.round(m.requestsPerSec ?? 0).toLocaleString('en-US')} | ${ms(m.p50us)} | ${ms(m.p99us)} | ${ratio} |`;
    }),
  ]);
  console.log('wrote the loss table in docs/BENCHMARKS.md');
  writeReadmeTable();
}
