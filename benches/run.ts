// `npm run bench`: every transport through every scenario, server and client each in their
// own process on 127.0.0.1, 3 runs each, medians kept. Writes benches/results/latest.json and
// one SVG chart per scenario under docs/, and prints the table with the target ratios.
//
//   npm run bench -- [--quick] [--runs N] [--only name,name] [--scenarios a,b] [--report]
//
// --quick runs every scenario for a moment (CI: the harness must not rot) and writes
// benches/results/quick.json instead; a run narrowed by --only or --scenarios writes
// benches/results/partial.json and leaves the charts and README alone. --report re-renders the table, the charts and the
// README block from benches/results/latest.json without measuring.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { SingleBar } from 'cli-progress';
import { generateDevCert } from '../dist/index.js';
import { barChart } from './chart.js';
import {
  medians,
  versions as packageVersions,
  runOnce,
  machine as thisMachine,
  writeReadmeBlock,
} from './harness.js';
import type { Figures } from './scenarios.js';
import { transports } from './transports.js';

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    runs: { type: 'string' },
    only: { type: 'string' },
    scenarios: { type: 'string' },
    report: { type: 'boolean', default: false },
  },
});
const quick = args.quick ?? false;
const runs = Number(args.runs ?? (quick ? 1 : 3));
const names = args.only ? args.only.split(',') : Object.keys(transports);
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
const scenarios = (args.scenarios ? args.scenarios.split(',') : Object.keys(SCENARIOS)) as Scenario[];
const root = new URL('..', import.meta.url).pathname;
const here = new URL('.', import.meta.url).pathname;

const tls = generateDevCert(['localhost', '127.0.0.1']);

type Result = { median: Figures; runs: Figures[] } | { error: string };

interface Report {
  date: string;
  command: string;
  quick: boolean;
  runs: number;
  machine: { cpus: number; cpu: string; memoryGiB: number; os: string; node: string };
  versions: Record<string, string>;
  names: string[];
  scenarios: Scenario[];
  results: Record<string, Record<string, Result>>;
}

async function measure(): Promise<Report> {
  const results: Record<string, Record<string, Result>> = {};
  const bar = new SingleBar({
    format: 'bench [{bar}] {value}/{total} | {task}',
    hideCursor: true,
    noTTYOutput: true,
    notTTYSchedule: 5000,
  });
  bar.start(scenarios.length * names.length * runs, 0, { task: 'starting' });
  for (const scenario of scenarios) {
    const row: Record<string, Result> = {};
    results[scenario] = row;
    for (const name of names) {
      const done: Figures[] = [];
      let error: string | undefined;
      for (let r = 0; r < runs && !error; r++) {
        bar.update({ task: `${scenario} · ${name} · run ${r + 1}/${runs}` });
        try {
          done.push(await runOnce(name, scenario, { tls, quick }));
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
// A run narrowed with --only or --scenarios never replaces the full results, charts or README.
const partial = Boolean(args.only || args.scenarios);
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
  writeReadme();
  console.log('wrote docs/bench-*.svg and the Performance table in README.md');
}
process.exit(0);

/** Replaces the README's generated block (between the bench markers) with this run's table. */
function writeReadme(): void {
  const fmt = (v: number | undefined) =>
    v === undefined
      ? 'failed'
      : v >= 1000
        ? Math.round(v).toLocaleString('en-US')
        : v >= 10
          ? v.toFixed(1)
          : v.toFixed(2);
  const cols: [Scenario, string, string][] = [
    ['bulk', 'mbPerSec', 'bulk MB/s'],
    ['small', 'messagesPerSec', '64 B msgs/s'],
    ['pingpong', 'p50us', 'ping-pong p50 µs'],
    ['pingpong', 'p99us', 'p99 µs'],
    ['concurrency', 'requestsPerSec', '100 in flight req/s'],
    ['concurrency', 'p99us', 'p99 µs'],
    ['setup', 'p50ms', 'setup p50 ms'],
    ['memory', 'serverKiBPerConn', 'server KiB/conn'],
    ['memory', 'clientKiBPerConn', 'client KiB/conn'],
    ['memory', 'crowdedP50us', 'ping-pong p50 µs, 500 idle held'],
  ];
  const shown = cols.filter(([sc]) => report.scenarios.includes(sc));
  const versions = Object.entries(report.versions)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
  writeReadmeBlock('bench', 'npm run bench', [
    `Measured with \`${report.command}\` on ${where}, ${machine.memoryGiB} GiB, ${machine.os}, ${report.date.slice(0, 10)}: median of ${report.runs} runs, server and client in their own processes on 127.0.0.1. Versions: ${versions}. Every figure: \`benches/results/latest.json\`.`,
    '',
    `| transport | ${shown.map((c) => c[2]).join(' | ')} |`,
    `| --- | ${shown.map(() => '---:').join(' | ')} |`,
    ...report.names.map(
      (name) => `| ${name} | ${shown.map(([sc, m]) => fmt(get(sc, name, m))).join(' | ')} |`,
    ),
    '',
    ...report.scenarios.map((sc) => `![${SCENARIOS[sc].title}](docs/bench-${sc}.svg)`),
  ]);
}
