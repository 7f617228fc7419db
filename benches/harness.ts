// What every benchmark command shares: one run of a scenario, with the server and the client
// each in their own process (on loopback, or on either side of a lossy link), medians, and
// the machine and versions a report names.
import { type ChildProcess, type SpawnOptions, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { createInterface } from 'node:readline';
import type { LossyLink } from '../tests/lossy-link.js';
import type { Figures } from './scenarios.js';
import type { Tls } from './types.js';

const root = new URL('..', import.meta.url).pathname;
const here = new URL('.', import.meta.url).pathname;

function node(
  script: string,
  argv: string[],
  env: NodeJS.ProcessEnv,
  spawner: (command: string, args: string[], options: SpawnOptions) => ChildProcess,
): ChildProcess {
  return spawner(process.execPath, ['--expose-gc', '--import', 'tsx', `${here}${script}`, ...argv], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

function firstLine(child: ChildProcess, match: RegExp, timeoutMs: number, what: string): Promise<string> {
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
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited with ${code}: ${stderr.trim().split('\n').slice(-3).join(' | ')}`));
    });
  });
}

/** One run of `scenario` on transport `name`: a server process, then a client process. With
 *  `link`, the server runs in the link's server namespace and the client in its client one. */
export async function runOnce(
  name: string,
  scenario: string,
  options: { tls: Tls; quick: boolean; link?: LossyLink },
): Promise<Figures> {
  const { tls, quick, link } = options;
  const env = {
    ...process.env,
    BENCH_CERT: tls.cert,
    BENCH_KEY: tls.key,
    BENCH_HOST: link?.serverIp ?? '127.0.0.1',
    QUICWIRE_BACKEND: '',
  };
  const server = node('server.ts', [name], env, link ? link.spawn.bind(link, 'server') : spawn);
  try {
    const ready = await firstLine(server, /^READY \d+$/, 30_000, `${name} server`);
    const port = ready.split(' ')[1] as string;
    const client = node(
      'client.ts',
      [name, scenario, port, String(server.pid), ...(quick ? ['--quick'] : [])],
      env,
      link ? link.spawn.bind(link, 'client') : spawn,
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

export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? Number.NaN;
}

/** The median of each figure over several runs. */
export function medians(runs: Figures[]): Figures {
  const keys = Object.keys(runs[0] ?? {});
  return Object.fromEntries(keys.map((k) => [k, median(runs.map((f) => f[k] as number))]));
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
