// What every benchmark command shares: one run of a scenario, with the server and the client
// each in their own process (on loopback, or on either side of a lossy link), medians, and
// the machine and versions a report names.
import { type ChildProcess, type SpawnOptions, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { createInterface } from 'node:readline';
import type { LossyLink } from '../tests/lossy-link.js';
import { type Figures, FULL, QUICK } from './scenarios.js';
import type { Tls } from './types.js';

const root = new URL('..', import.meta.url).pathname;
const here = new URL('.', import.meta.url).pathname;

/** A node process running `script` (in benches/) through tsx, stdout piped. */
export function node(
  script: string,
  argv: string[],
  env: NodeJS.ProcessEnv,
  spawner: (command: string, args: string[], options: SpawnOptions) => ChildProcess,
  nodeFlags: string[] = [],
): ChildProcess {
  const args = ['--expose-gc', ...nodeFlags, '--import', 'tsx', `${here}${script}`, ...argv];
  return spawner(process.execPath, args, {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/** The first line of `child`'s stdout that matches. */
export function firstLine(
  child: ChildProcess,
  match: RegExp,
  timeoutMs: number,
  what: string,
): Promise<string> {
  let stderr = '';
  child.stderr?.on('data', (d) => {
    stderr += d;
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what}: no answer in ${timeoutMs} ms`)), timeoutMs);
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
      if (match.test(line)) {
        clearTimeout(timer);
        resolve(line);
      }
    });
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`${what}: ${err.message}`));
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited with ${code}: ${stderr.trim().split('\n').slice(-3).join(' | ')}`));
    });
  });
}

/** One run of `scenario` on transport `name`: a server process, then a client process. With
 *  `link`, the server runs in the link's server namespace and the client in its client one;
 *  `nodeFlags` go to both processes' node (V8 tuning, measured as such). */
export async function runOnce(
  name: string,
  scenario: string,
  options: { tls: Tls; quick: boolean; link?: LossyLink; nodeFlags?: string[] },
): Promise<Figures> {
  const { tls, quick, link, nodeFlags } = options;
  const env = {
    ...process.env,
    BENCH_CERT: tls.cert,
    BENCH_KEY: tls.key,
    BENCH_HOST: link?.serverIp ?? '127.0.0.1',
    QUICWIRE_BACKEND: '',
  };
  const server = node('server.ts', [name], env, link ? link.spawn.bind(link, 'server') : spawn, nodeFlags);
  try {
    const ready = await firstLine(server, /^READY \d+$/, 30_000, `${name} server`);
    const port = ready.split(' ')[1] as string;
    const client = node(
      'client.ts',
      [name, scenario, port, String(server.pid), ...(quick ? ['--quick'] : [])],
      env,
      link ? link.spawn.bind(link, 'client') : spawn,
      nodeFlags,
    );
    try {
      const line = await firstLine(client, /^\{/, quick ? 60_000 : 180_000, `${name} ${scenario}`);
      return JSON.parse(line) as Figures;
    } finally {
      client.kill('SIGKILL');
    }
  } finally {
    server.kill('SIGTERM');
    setTimeout(() => server.kill('SIGKILL'), 2000).unref();
  }
}

/** quinn alone, in Rust with no JS (`crates/quicwire/examples/ceiling.rs`, built by `npm run
 *  bench`): one run of the bulk or small scenario, its server in a child process as the JS
 *  transports have theirs. The ceiling the bulk target is measured against, in the same run. */
export async function runCeiling(scenario: 'bulk' | 'small', quick: boolean): Promise<Figures> {
  const binary = `${root}target/release/examples/ceiling`;
  const s = quick ? QUICK : FULL;
  const sizes = [s.bulkBytes, s.bulkWarmupBytes, s.smallSeconds * 1000].map(String);
  const child = spawn(binary, ['--json', scenario, ...sizes], {
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true, // its own process group, so a timeout also stops the server it started
  });
  try {
    const line = await firstLine(child, /^\{/, quick ? 60_000 : 180_000, `quinn ceiling ${scenario}`);
    return JSON.parse(line) as Figures;
  } finally {
    try {
      if (child.pid) process.kill(-child.pid, 'SIGKILL');
    } catch {
      // the group has already exited
    }
  }
}

export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? Number.NaN;
}

/** The median of each figure over several runs. */
export function medians(runs: Figures[]): Figures {
  const keys = Object.keys(runs[0] ?? {});
  return Object.fromEntries(keys.map((k) => [k, median(runs.map((f) => f[k] as number))]));
}

/** `npm run bench`'s report: benches/results/latest.json (quick.json, partial.json). */
export interface MainReport<Scenario extends string = string> {
  date: string;
  command: string;
  quick: boolean;
  runs: number;
  machine: ReturnType<typeof machine>;
  versions: Record<string, string>;
  names: string[];
  scenarios: Scenario[];
  results: Record<string, Record<string, { median: Figures; runs: Figures[] } | { error: string }>>;
}

/** A figure as the tables print it: thousands grouped, small ones to two decimals. */
export function fmt(v: number): string {
  return v >= 1000 ? Math.round(v).toLocaleString('en-US') : v >= 10 ? v.toFixed(1) : v.toFixed(2);
}

/** Replaces the block of `file` (README.md, docs/BENCHMARKS.md) between
 *  `<!-- name:start … -->` and `<!-- name:end -->` with `lines`, marked as generated by
 *  `command`. */
export function writeBlock(file: string, name: string, command: string, lines: string[]): void {
  const end = `<!-- ${name}:end -->`;
  const text = readFileSync(`${root}${file}`, 'utf8');
  const from = text.indexOf(`<!-- ${name}:start`);
  const to = text.indexOf(end);
  if (from < 0 || to < 0) throw new Error(`${file} has no ${name} markers`);
  const block = [
    `<!-- ${name}:start (generated by ${command}; edits here are overwritten) -->`,
    ...lines,
    end,
  ];
  writeFileSync(`${root}${file}`, text.slice(0, from) + block.join('\n') + text.slice(to + end.length));
}

/** A side benchmark's report: what ran, where, with which versions, and `fields` (its rows).
 *  Written to benches/results/<name>.json, or <name>-quick.json for a --quick run. */
export function saveReport<T extends object>(name: string, script: string, quick: boolean, fields: T) {
  const argv = process.argv.slice(2).filter((a) => !a.startsWith('--serve'));
  const report = {
    date: new Date().toISOString(),
    command: `npm run ${script}${argv.length > 0 ? ` -- ${argv.join(' ')}` : ''}`,
    quick,
    machine: machine(),
    versions: versions(),
    ...fields,
  };
  mkdirSync(`${here}results`, { recursive: true });
  const out = `${here}results/${quick ? `${name}-quick` : name}.json`;
  writeFileSync(out, `${JSON.stringify(report, null, 2)}\n`);
  console.log(`wrote ${out}`);
  return report;
}

export function machine() {
  return {
    cpus: cpus().length,
    cpu: cpus()[0]?.model.trim() ?? 'unknown',
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    os: `${process.platform} ${process.arch}`,
    node: process.version,
  };
}

export function versions(): Record<string, string> {
  const version = (pkg: string) => {
    try {
      return (
        JSON.parse(readFileSync(`${root}node_modules/${pkg}/package.json`, 'utf8')) as { version: string }
      ).version;
    } catch {
      return 'unknown';
    }
  };
  return {
    quicwire: (JSON.parse(readFileSync(`${root}package.json`, 'utf8')) as { version: string }).version,
    '@matrixai/quic': version('@matrixai/quic'),
    '@chainsafe/libp2p-quic': version('@chainsafe/libp2p-quic'),
    ws: version('ws'),
  };
}
