// `npm run bench:round-trip-cpu -- [--runs 3] [--count 20000] [--only a,b]`: where a
// ping-pong round trip's time goes. Each transport's bench server and a client in processes
// of their own; after a warm-up the client makes `count` 1 KiB round trips one at a time
// while `perf stat` counts each process's CPU time. Prints p50/p99 and the CPU each side
// spends per round trip. Round-trip latency is CPU on both sides plus the kernel's wake-ups
// between them, so this says how much of a latency gap is work and how much is waiting.
// Needs `perf` (Debian's linux-perf) and permission to attach to the processes.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { parseArgs } from 'node:util';
import { generateDevCert } from '../dist/index.js';
import { firstLine, median, node } from './harness.js';
import { percentile } from './scenarios.js';
import { transport } from './transports.js';

const { values: args } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    count: { type: 'string', default: '20000' },
    only: { type: 'string', default: 'quicwire-native,node-tls' },
    client: { type: 'string' },
  },
});
const WARMUP = 3000;

/** The client process: `--client name,port`. Warms up, says WARM, measures, says the figures. */
async function client(name: string, port: number, count: number): Promise<void> {
  const c = await transport(name).connect(port, {
    cert: process.env.BENCH_CERT as string,
    key: process.env.BENCH_KEY as string,
  });
  const payload = new Uint8Array(1024).fill(3);
  for (let i = 0; i < WARMUP; i++) await c.request(payload);
  console.log('WARM');
  // perf attaches meanwhile; idle time costs no CPU, so it does not skew the figures.
  await new Promise((r) => setTimeout(r, 300));
  const times = new Float64Array(count);
  for (let i = 0; i < count; i++) {
    const t0 = performance.now();
    await c.request(payload);
    times[i] = performance.now() - t0;
  }
  times.sort();
  console.log(
    JSON.stringify({ p50us: percentile(times, 0.5) * 1000, p99us: percentile(times, 0.99) * 1000 }),
  );
  await new Promise((r) => setTimeout(r, 300));
  await c.close();
  process.exit(0);
}

/** CPU milliseconds `perf stat` counted for `pid` until stopped. */
function cpuTime(pid: number, file: string): { stop(): Promise<number> } {
  const perf = spawn('perf', ['stat', '-e', 'task-clock', '-x', ',', '-o', file, '-p', String(pid)], {
    stdio: 'ignore',
  });
  const exited = new Promise<void>((r) => perf.once('exit', () => r()));
  return {
    async stop() {
      perf.kill('SIGINT');
      await exited;
      const row = readFileSync(file, 'utf8')
        .split('\n')
        .find((l) => l.includes('task-clock'));
      if (!row) throw new Error(`perf stat counted nothing for ${pid} (is perf allowed to attach?)`);
      return Number(row.split(',')[0]);
    },
  };
}

async function once(name: string, count: number, tls: { cert: string; key: string }, perfDir: string) {
  const env = { ...process.env, BENCH_CERT: tls.cert, BENCH_KEY: tls.key, QUICWIRE_BACKEND: '' };
  const server = node('server.ts', [name], env, spawn);
  try {
    const port = (await firstLine(server, /^READY \d+$/, 30_000, `${name} server`)).split(' ')[1] as string;
    const client = node(
      'round-trip-cpu.ts',
      ['--client', `${name},${port}`, '--count', String(count)],
      env,
      spawn,
    );
    try {
      await firstLine(client, /^WARM$/, 60_000, `${name} warm-up`);
      const perfs = [
        cpuTime(server.pid as number, `${perfDir}/server`),
        cpuTime(client.pid as number, `${perfDir}/client`),
      ];
      const figures = JSON.parse(await firstLine(client, /^\{/, 300_000, `${name} round trips`));
      const [serverMs, clientMs] = await Promise.all(perfs.map((p) => p.stop()));
      const perRoundTrip = (ms: number) => (ms * 1000) / count;
      return {
        ...(figures as { p50us: number; p99us: number }),
        serverUs: perRoundTrip(serverMs as number),
        clientUs: perRoundTrip(clientMs as number),
      };
    } finally {
      client.kill('SIGKILL');
    }
  } finally {
    server.kill('SIGTERM');
  }
}

if (args.client) {
  const [name, port] = args.client.split(',') as [string, string];
  await client(name, Number(port), Number(args.count));
} else {
  const tls = generateDevCert(['localhost', '127.0.0.1']);
  const perfDir = mkdtempSync(`${tmpdir()}/round-trip-cpu-`);
  const names = (args.only as string).split(',');
  const all: Record<string, { p50us: number; p99us: number; serverUs: number; clientUs: number }[]> = {};
  // Runs alternate between the transports, so a slow spell of the machine hits each alike.
  for (let run = 1; run <= Number(args.runs); run++) {
    for (const name of names) {
      const r = await once(name, Number(args.count), tls, perfDir);
      all[name] = [...(all[name] ?? []), r];
      console.log(
        `run ${run} ${name}: p50 ${r.p50us.toFixed(1)} µs, p99 ${r.p99us.toFixed(1)} µs; CPU per round trip: server ${r.serverUs.toFixed(1)} µs, client ${r.clientUs.toFixed(1)} µs`,
      );
    }
  }
  console.log('\nmedians:');
  console.log(
    '| transport | p50 µs | p99 µs | server CPU µs per round trip | client CPU µs per round trip |',
  );
  console.log('| --- | ---: | ---: | ---: | ---: |');
  for (const [name, rs] of Object.entries(all)) {
    const m = (k: 'p50us' | 'p99us' | 'serverUs' | 'clientUs') => median(rs.map((r) => r[k])).toFixed(1);
    console.log(`| ${name} | ${m('p50us')} | ${m('p99us')} | ${m('serverUs')} | ${m('clientUs')} |`);
  }
}
