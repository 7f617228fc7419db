// `npm run bench:browser`: a page in headless Chromium (Debian's) talking to a server in
// Node, through quicwire's QuicTransport over the browser's own WebTransport, and through the
// browser's WebSocket to a `ws` server, in the same run and the same browser; and, for the
// choice a page has, quicwire's QUIC inside a WebSocket to the same server (`transport: 'tcp'`). Each server
// runs in a process of its own; the jobs are in benches/browser/page.js (64-byte messages one
// way, requests with 100 in flight, sequential round trips).
//
//   npm run bench:browser -- [--runs 3] [--only quicwire|quicwireTcp|websocket]
//
// Writes benches/results/browser.json and the browser table of docs/BENCHMARKS.md.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { generateDevCert } from '../dist/index.js';
import { haveChromium, launchChromium } from '../tests/shipping/chromium.js';
import { fmt, machine, median, saveReport, writeBlock } from './harness.js';

const root = new URL('..', import.meta.url).pathname;
const { values: args } = parseArgs({
  options: { runs: { type: 'string', default: '3' }, only: { type: 'string' } },
});
const RUNS = Number(args.runs);
const SYSTEMS = [
  { name: 'quicwire over WebTransport', server: 'quicwire', client: 'quicwire' },
  { name: 'quicwire, QUIC in a WebSocket', server: 'quicwire', client: 'quicwireTcp' },
  { name: 'ws (WebSocket)', server: 'ws', client: 'websocket' },
] as const;

interface Figures {
  messagesPerSecond: number;
  requestsPerSecond: number;
  p50ms: number;
  p99ms: number;
}

async function startServer(
  system: string,
  tls: { cert: string; key: string },
): Promise<[ChildProcess, number]> {
  const child = spawn(process.execPath, ['--import', 'tsx', `${root}benches/browser-server.ts`, system], {
    env: { ...process.env, BENCH_CERT: tls.cert, BENCH_KEY: tls.key, QUICWIRE_BACKEND: '' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const port = await new Promise<number>((resolve, reject) => {
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
      const ready = line.match(/^READY (\d+)$/);
      if (ready) resolve(Number(ready[1]));
    });
    child.once('exit', (code) => reject(new Error(`the ${system} server exited with ${code}`)));
  });
  return [child, port];
}

async function main(): Promise<void> {
  if (!haveChromium) throw new Error('no Chromium: apt-get install chromium (or set QUICWIRE_CHROMIUM)');
  if (!existsSync(`${root}dist/browser/quicwire.js`)) throw new Error('run `npm run build` first');
  const types: Record<string, string> = {
    html: 'text/html',
    js: 'text/javascript',
    wasm: 'application/wasm',
  };
  const files = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const file = `${root}${path.slice(1)}`;
    if (!/^\/(benches\/browser|dist\/browser)\/[\w.-]+$/.test(path) || !existsSync(file)) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': types[path.split('.').pop() ?? ''] ?? 'application/octet-stream' });
    res.end(readFileSync(file));
  });
  await new Promise<void>((resolve) => files.listen(0, '127.0.0.1', resolve));
  const page = `http://127.0.0.1:${(files.address() as AddressInfo).port}/benches/browser/page.html`;
  // Valid for 14 days at most: what a browser takes by its hash.
  const tls = generateDevCert(['127.0.0.1'], { validDays: 14 });
  const browser = await launchChromium();
  const runs: Record<string, Figures[]> = {};
  try {
    for (let run = 0; run < RUNS; run++) {
      for (const system of SYSTEMS.filter((s) => !args.only || s.client === args.only)) {
        const [server, port] = await startServer(system.server, tls);
        const tab = await browser.newPage();
        try {
          await tab.goto(page);
          await tab.waitForFunction(() => (window as unknown as { bench?: unknown }).bench);
          const figures = (await tab.evaluate(
            ({ client, port, hash, ca }) => {
              const bench = (
                window as unknown as { bench: Record<string, (p: number, h: string, ca: string) => unknown> }
              ).bench;
              return bench[client]?.(port, hash, ca);
            },
            { client: system.client, port, hash: tls.hash, ca: tls.cert },
          )) as Figures;
          runs[system.name] = [...(runs[system.name] ?? []), figures];
          console.log(
            `${system.name} run ${run + 1}: ${fmt(figures.messagesPerSecond)} msgs/s, ` +
              `${fmt(figures.requestsPerSecond)} req/s, p50 ${fmt(figures.p50ms)} ms, p99 ${fmt(figures.p99ms)} ms`,
          );
        } finally {
          await tab.close();
          server.kill();
        }
      }
    }
  } finally {
    await browser.close();
    files.close();
  }
  const medians = Object.fromEntries(
    Object.entries(runs).map(([name, all]) => [
      name,
      Object.fromEntries(
        (Object.keys(all[0] ?? {}) as (keyof Figures)[]).map((k) => [k, median(all.map((f) => f[k]))]),
      ) as unknown as Figures,
    ]),
  );
  // A run of some rows only (--only) is for a look, and leaves the report and table as they are.
  const report = args.only
    ? { date: new Date().toISOString(), machine: machine() }
    : saveReport('browser', 'bench:browser', false, { runs, medians });
  const ws = (medians['ws (WebSocket)'] ?? Object.values(medians)[0]) as Figures;
  const chromium = (await import('node:child_process'))
    .execFileSync(process.env.QUICWIRE_CHROMIUM ?? '/usr/bin/chromium', ['--version'], {
      stdio: ['ignore', 'pipe', 'ignore'],
    })
    .toString()
    .trim();
  const lines = [
    `Medians of ${RUNS} runs (\`npm run bench:browser\`, ${report.date.slice(0, 10)}), ${chromium}, headless, ` +
      `on ${report.machine.cpus} cores shared by the browser and the server. Every figure: \`benches/results/browser.json\`.`,
    '',
    '| client in the page | 64 B messages/s | 100 in flight, req/s | round trip p50 ms | p99 ms | messages vs ws | requests vs ws |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...Object.entries(medians).map(
      ([name, f]) =>
        `| ${name} | ${fmt(f.messagesPerSecond)} | ${fmt(f.requestsPerSecond)} | ${fmt(f.p50ms)} | ${fmt(f.p99ms)} | ` +
        `${(f.messagesPerSecond / ws.messagesPerSecond).toFixed(2)}x | ${(f.requestsPerSecond / ws.requestsPerSecond).toFixed(2)}x |`,
    ),
  ];
  if (!args.only) writeBlock('docs/BENCHMARKS.md', 'browser', 'npm run bench:browser', lines);
  console.log(lines.join('\n'));
}

await main();
