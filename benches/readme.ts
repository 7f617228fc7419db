// The README's one benchmark table: a row per transport with the figures of `npm run bench`
// (benches/results/latest.json) and, in the last columns, quicwire's figures from the side
// benchmarks of QUIC's own powers: loss (loss.json, a row per congestion controller), 0-RTT
// (zero-rtt.json) and priority (priority.json). Each of those commands re-renders the table
// after a full run, so it always shows the newest full run of each.
import { existsSync, readFileSync } from 'node:fs';
import { fmt, type MainReport, writeBlock } from './harness.js';

const here = new URL('.', import.meta.url).pathname;
const NATIVE = 'quicwire-native';

type Figures = Record<string, number>;
interface Side<Row> {
  command: string;
  date: string;
  rows: (Row & { median: Figures })[];
}
/** The main table's columns: scenario, metric, heading. */
const COLUMNS: [string, string, string][] = [
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

function load<T>(name: string): T | undefined {
  const file = `${here}results/${name}.json`;
  return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as T) : undefined;
}

/** Renders README.md's bench block from every full report there is. */
export function writeReadmeTable(): void {
  const main = load<MainReport>('latest');
  if (!main) {
    console.log('README.md table left alone: no benches/results/latest.json (`npm run bench` writes it)');
    return;
  }
  const loss = load<Side<{ loss: number; name: string }>>('loss');
  const zeroRtt = load<Side<{ path: string; way: string }>>('zero-rtt');
  const priority = load<Side<{ link: string; bulk: string; priority: number; cc: string }>>('priority');

  const cell = (scenario: string, name: string, metric: string): string => {
    const r = main.results[scenario]?.[name];
    if (!r) return '—';
    return 'median' in r && r.median[metric] !== undefined ? fmt(r.median[metric]) : 'failed';
  };
  const atLoss = (name: string, metric: string, scale = 1) => {
    const m = loss?.rows.find((r) => r.loss === 5 && r.name === name)?.median[metric];
    return m === undefined ? '—' : fmt(m / scale);
  };
  const firstReply = (way: string) =>
    zeroRtt?.rows.find((r) => r.path === '20 ms round trip' && r.way === way)?.median.p50ms;
  const prio = (level: number) =>
    priority?.rows.find(
      (r) => r.link === '100 Mbit/s' && r.bulk === 'uploads' && r.cc === 'bbr' && r.priority === level,
    )?.median.p99ms;
  const pair = (a: number | undefined, b: number | undefined) =>
    a === undefined || b === undefined ? '—' : `${fmt(a)} (${fmt(b)})`;

  // Rows that only the loss bench has (quicwire-native with another controller) go right
  // after the transport they vary.
  const lossOnly = [...new Set(loss?.rows.map((r) => r.name))].filter((n) => !main.names.includes(n));
  const names = main.names.flatMap((name) => [name, ...lossOnly.filter((n) => n.startsWith(`${name} `))]);
  names.push(...lossOnly.filter((n) => !names.includes(n)));
  const shown = COLUMNS.filter(([sc]) => main.scenarios.includes(sc));
  const headings = [
    ...shown.map((c) => c[2]),
    '100 in flight, 5 % loss: req/s',
    'p99 ms',
    'first reply, 20 ms RTT: 0-RTT ms (full handshake)',
    'request p99 under bulk, 100 Mbit/s, BBR: priority 10 ms (priority 0)',
  ];
  const row = (name: string) => [
    ...shown.map(([sc, m]) => cell(sc, name, m)),
    atLoss(name, 'requestsPerSec'),
    atLoss(name, 'p99us', 1000),
    name === NATIVE ? pair(firstReply('resumed, 0-RTT'), firstReply('full handshake')) : '—',
    name === NATIVE ? pair(prio(10), prio(0)) : '—',
  ];
  const { machine } = main;
  const versions = Object.entries(main.versions)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
  const side = [loss, zeroRtt, priority]
    .filter((r) => r !== undefined)
    .map((r) => `\`${r.command}\` (${r.date.slice(0, 10)})`)
    .join(', ');
  writeBlock('README.md', 'bench', 'npm run bench and the side benchmarks', [
    `Measured with \`${main.command}\` on ${machine.cpus} × ${machine.cpu} · Node ${machine.node}, ${machine.memoryGiB} GiB, ${machine.os}: median of ${main.runs} runs, server and client in their own processes on 127.0.0.1. Versions: ${versions}. The last four columns come from ${side || 'the side benchmarks, not run yet'}; loss is each way between two network namespaces; rows with a controller's name differ only in it (the others use CUBIC). Every figure: \`benches/results/\`.`,
    '',
    `| transport | ${headings.join(' | ')} |`,
    `| --- | ${headings.map(() => '---:').join(' | ')} |`,
    ...names.map((name) => `| ${name} | ${row(name).join(' | ')} |`),
  ]);
}
