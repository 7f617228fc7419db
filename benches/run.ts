// `npm run bench`: every transport through every scenario, server and client each in their
// own process on 127.0.0.1, 3 runs each, medians kept, and quinn alone in Rust (quinn-ceiling)
// through the bulk and small scenarios in the same layout. Writes benches/results/latest.json
// and one SVG chart per scenario under docs/, prints the table and the targets met or missed,
// and puts the table in the README and the targets in docs/BENCHMARKS.md.
//
//   npm run bench -- [--quick] [--runs N] [--only name,name] [--scenarios a,b]
//                    [--node-flags='--flag ...'] [--report]
//
// --quick runs every scenario for a moment (CI: the harness must not rot) and writes
// benches/results/quick.json instead; a run narrowed by --only or --scenarios, or given
// --node-flags for every server's and client's node, writes benches/results/partial.json
// and leaves the charts and docs alone. --report re-renders the tables and the charts from
// benches/results/latest.json without measuring.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { SingleBar } from 'cli-progress';
import { generateDevCert } from '../dist/index.js';
import { barChart } from './chart.js';
import {
  fmt,
  type MainReport,
  medians,
  versions as packageVersions,
  runCeiling,
  runOnce,
  machine as thisMachine,
  writeBlock,
} from './harness.js';
import { writeReadmeTable } from './readme.js';
import type { Figures } from './scenarios.js';
import { transports } from './transports.js';

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    runs: { type: 'string' },
    only: { type: 'string' },
    scenarios: { type: 'string' },
    report: { type: 'boolean', default: false },
    'node-flags': { type: 'string' },
  },
});
const quick = args.quick ?? false;
const runs = Number(args.runs ?? (quick ? 1 : 3));
/** Flags for every server's and client's node, e.g. V8 tuning: `--node-flags='--a --b'`. */
const nodeFlags = args['node-flags']?.split(' ').filter(Boolean) ?? [];
/** quinn alone in Rust, no JS: a row of the bulk and small scenarios only (runCeiling). */
const CEILING = 'quinn-ceiling';
const names = args.only ? args.only.split(',') : [...Object.keys(transports), CEILING];
const SCENARIOS = {
  bulk: {
    metric: 'mbPerSec',
    unit: 'MB/s',
    title: 'Bulk: 256 MiB on one stream in 64 KiB chunks',
    higher: true,
  },
  small: {
    metric: 'messagesPerSec',
    unit: 'msg/s',
    title: '64 B messages delivered per second, one connection',
    higher: true,
  },
  pingpong: {
    metric: 'p50us',
    unit: 'µs',
    title: 'Ping-pong 1 KiB: p50 latency (lower is better)',
    higher: false,
  },
  concurrency: {
    metric: 'requestsPerSec',
    unit: 'req/s',
    title: '100 requests in flight on one connection',
    higher: true,
  },
  setup: {
    metric: 'p50ms',
    unit: 'ms',
    title: 'New connection to first reply: p50 (lower is better)',
    higher: false,
  },
  memory: {
    metric: 'serverKiBPerConn',
    unit: 'KiB',
    title: 'Server memory per idle connection (lower is better)',
    higher: false,
  },
} as const;
type Scenario = keyof typeof SCENARIOS;

/** A target: `who`'s figure in `scenario` against `against`'s in the same run
 *  (or, without `against`, the figure itself) must be at least (≥) or at most (≤) `limit`. */
type Target = [
  who: string,
  scenario: Scenario,
  metric: string,
  bound: '≥' | '≤',
  limit: number,
  against?: string,
];
const [NATIVE, WASM, DEFAULT] = ['quicwire-native', 'quicwire-wasm', 'quicwire-native msgpack'];
// Against the peers at their best (benches/adapters/README.md).
const TARGETS: Target[] = [
  [NATIVE, 'small', 'messagesPerSec', '≥', 1, 'node-tls'],
  [DEFAULT, 'small', 'messagesPerSec', '≥', 0.5, NATIVE],
  [NATIVE, 'bulk', 'mbPerSec', '≥', 0.8, CEILING],
  [NATIVE, 'bulk', 'mbPerSec', '≥', 1.5, 'libp2p-quic'],
  [NATIVE, 'pingpong', 'p50us', '≤', 0.8, 'node-tls'],
  [NATIVE, 'pingpong', 'p99us', '≤', 0.8, 'node-tls'],
  [NATIVE, 'concurrency', 'requestsPerSec', '≥', 1.5, 'node-tls'],
  [NATIVE, 'setup', 'p50ms', '≤', 0.5, 'node-tls'],
  [NATIVE, 'memory', 'serverKiBPerConn', '≤', 16],
  [WASM, 'small', 'messagesPerSec', '≥', 0.8, NATIVE],
];
const scenarios = (args.scenarios ? args.scenarios.split(',') : Object.keys(SCENARIOS)) as Scenario[];
const root = new URL('..', import.meta.url).pathname;
const here = new URL('.', import.meta.url).pathname;

const tls = generateDevCert(['localhost', '127.0.0.1']);

type Result = MainReport['results'][string][string];
type Report = MainReport<Scenario>;

async function measure(): Promise<Report> {
  const results: Record<string, Record<string, Result>> = {};
  const bar = new SingleBar({
    format: 'bench [{bar}] {value}/{total} | {task}',
    hideCursor: true,
    noTTYOutput: true,
    notTTYSchedule: 5000,
  });
  const applies = (scenario: Scenario, name: string) =>
    name !== CEILING || scenario === 'bulk' || scenario === 'small';
  const tasks = scenarios.flatMap((sc) => names.filter((name) => applies(sc, name)));
  bar.start(tasks.length * runs, 0, { task: 'starting' });
  for (const scenario of scenarios) {
    const row: Record<string, Result> = {};
    results[scenario] = row;
    for (const name of names.filter((n) => applies(scenario, n))) {
      const done: Figures[] = [];
      let error: string | undefined;
      for (let r = 0; r < runs && !error; r++) {
        bar.update({ task: `${scenario} · ${name} · run ${r + 1}/${runs}` });
        try {
          done.push(
            await (name === CEILING
              ? runCeiling(scenario as 'bulk' | 'small', quick)
              : runOnce(name, scenario, { tls, quick, nodeFlags })),
          );
        } catch (err) {
          error = (err as Error).message;
        }
        bar.increment();
      }
      row[name] = error ? { error } : { median: medians(done), runs: done };
    }
  }
  bar.stop();
  return {
    date: new Date().toISOString(),
    command: `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`,
    quick,
    runs,
    machine: thisMachine(),
    versions: packageVersions(),
    names,
    scenarios,
    results,
  };
}

const latest = `${here}results/latest.json`;
// A run narrowed with --only or --scenarios, or tuned with --node-flags, never replaces the
// full results, charts or README.
const partial = Boolean(args.only || args.scenarios || nodeFlags.length);
const report: Report = args.report ? (JSON.parse(readFileSync(latest, 'utf8')) as Report) : await measure();
if (!args.report) {
  mkdirSync(`${here}results`, { recursive: true });
  const out = quick ? `${here}results/quick.json` : partial ? `${here}results/partial.json` : latest;
  writeFileSync(out, `${JSON.stringify(report, null, 2)}\n`);
  console.log(`wrote ${out}`);
}

const get = (scenario: Scenario, name: string, metric: string): number | undefined => {
  const r = report.results[scenario]?.[name];
  return r && 'median' in r ? r.median[metric] : undefined;
};
/** A figure for a table: `—` where the row does not run that scenario, `failed` where it failed. */
const cell = (scenario: Scenario, name: string, metric: string): string => {
  const v = get(scenario, name, metric);
  if (v !== undefined) return fmt(v);
  return report.results[scenario]?.[name] ? 'failed' : '—';
};
const { machine } = report;
const where = `${machine.cpus} × ${machine.cpu} · Node ${machine.node}`;

console.log(`\n${report.command} · ${where}\n`);
for (const scenario of report.scenarios) {
  const { metric, unit, title } = SCENARIOS[scenario];
  console.log(title);
  const base = get(scenario, 'node-tls', metric);
  for (const name of report.names) {
    const r = report.results[scenario]?.[name];
    if (!r) continue;
    if ('error' in r) {
      console.log(`  ${name.padEnd(24)} failed: ${r.error}`);
      continue;
    }
    const v = r.median[metric] as number;
    const ratio = base ? ` (${(v / base).toFixed(2)}× node-tls)` : '';
    const extra = Object.entries(r.median)
      .filter(([k]) => k !== metric)
      .map(([k, x]) => `${k} ${Number(x).toFixed(1)}`)
      .join(', ');
    console.log(
      `  ${name.padEnd(24)} ${v.toFixed(1).padStart(12)} ${unit}${ratio}${extra ? `  [${extra}]` : ''}`,
    );
  }
}

const targets = assess();
console.log('\nTargets, as ratios in this run:');
const width = Math.max(0, ...targets.map((t) => t.label.length));
for (const t of targets) console.log(`  ${t.met} ${t.label.padEnd(width)}  ${t.ratio}`);

if (!report.quick && !(partial && !args.report)) {
  mkdirSync(`${root}docs`, { recursive: true });
  for (const scenario of report.scenarios) {
    const { metric, unit, title } = SCENARIOS[scenario];
    const bars = report.names
      .map((name) => ({
        label: name,
        value: get(scenario, name, metric) ?? 0,
        highlight: name.startsWith('quicwire'),
      }))
      .filter((b) => b.value > 0);
    const note = `${report.command} · ${where} · median of ${report.runs} · ${report.date.slice(0, 10)}`;
    writeFileSync(`${root}docs/bench-${scenario}.svg`, barChart(title, unit, bars, note));
  }
  writeTables();
  console.log('wrote docs/bench-*.svg, the table in README.md and the targets in docs/BENCHMARKS.md');
}
process.exit(0);

/** Each target measured in this report: its label, the two figures, the ratio, and whether met. */
function assess() {
  return TARGETS.filter(([, scenario]) => report.scenarios.includes(scenario)).map(
    ([who, scenario, metric, bound, limit, against]) => {
      const mine = get(scenario, who, metric);
      const theirs = against ? get(scenario, against, metric) : 1;
      const value = mine !== undefined && theirs ? mine / theirs : undefined;
      const met = value === undefined ? '?' : (bound === '≥' ? value >= limit : value <= limit) ? '✔' : '✘';
      return {
        label: `${who} ${metric} ${bound} ${against ? `${limit}× ${against}` : limit}`,
        met,
        mine: cell(scenario, who, metric),
        theirs: against ? cell(scenario, against, metric) : '—',
        ratio: value === undefined ? 'n/a' : against ? `${value.toFixed(2)}×` : fmt(value),
      };
    },
  );
}

/** docs/BENCHMARKS.md's targets and README.md's table, from this run. */
function writeTables(): void {
  writeBlock('docs/BENCHMARKS.md', 'targets', 'npm run bench', [
    `The targets, as ratios in the run of \`benches/results/latest.json\` (${report.date.slice(0, 10)}; ${CEILING}: quinn alone in Rust, no JS, two processes):`,
    '',
    '| target | figure | against | ratio | met |',
    '| --- | ---: | ---: | ---: | :---: |',
    ...targets.map((t) => `| ${t.label} | ${t.mine} | ${t.theirs} | ${t.ratio} | ${t.met} |`),
    '',
    ...report.scenarios.map((sc) => `![${SCENARIOS[sc].title}](bench-${sc}.svg)`),
  ]);
  writeReadmeTable();
}
