// `npm run bench:bus`: the message-bus patterns with 100 and 1,000 agents, on quicwire's bus,
// NATS and a WebSocket hub, in the same run. The bus (or nats-server) runs in a process of
// its own; all agents run in a second process, so one clock times each delivery.
//
// Patterns, each for a few seconds with a fixed number of messages in flight (a window,
// counted at the receivers, the same for every system):
//   targeted   agent i sends to agent i+1 by name;
//   request    agent i requests from agent i+1, which echoes;
//   broadcast  agent 0 sends to every other agent;
//   queue      a tenth of the agents send to a queue group of the rest, one member each.
// Figures: deliveries per second, and p50/p99 from send to delivery (requests: to the reply).
//
//   npm run bench:bus -- [--quick] [--agents 100,1000] [--runs 3]
//
// BUS_WINDOW and BUS_PATTERNS (environment) change the window and run only some patterns,
// for profiling.
//
// Writes benches/results/bus.json and the bus table of docs/BENCHMARKS.md; --quick: a
// moment each, bus-quick.json only.
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { generateDevCert } from '../dist/index.js';
import { type AgentHandlers, type BusAgent, listenQuicBus, listenWsHub, SYSTEMS } from './bus-systems.js';
import { fmt, medians, saveReport, writeBlock } from './harness.js';

const PATTERNS = ['targeted', 'request', 'broadcast', 'queue'] as const;
type Pattern = (typeof PATTERNS)[number];
interface Figures {
  perSecond: number;
  p50ms: number;
  p99ms: number;
}

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    agents: { type: 'string' },
    runs: { type: 'string' },
    hub: { type: 'string' },
    run: { type: 'string' },
  },
});
const here = new URL('.', import.meta.url).pathname;
const quick = args.quick;
/** Messages in flight at once, over all senders. */
const WINDOW = Number(process.env.BUS_WINDOW ?? 1000);
const SECONDS = quick ? 0.5 : 4;
const PAYLOAD = 64;

async function main(): Promise<void> {
  const counts = (args.agents ?? (quick ? '20' : '100,1000')).split(',').map(Number);
  const tls = generateDevCert(['localhost', '127.0.0.1']);
  const runs = Number(args.runs ?? (quick ? 1 : 3));
  const results: Record<string, Record<number, Record<Pattern, Figures> | { error: string }>> = {};
  const all: Record<string, Record<number, Record<Pattern, Figures>[]>> = {};
  for (const n of counts) {
    for (const system of SYSTEMS) {
      results[system.name] ??= {};
      all[system.name] ??= {};
      const row = results[system.name] as (typeof results)[string];
      const done: Record<Pattern, Figures>[] = [];
      try {
        // Runs alternate between the systems' turns only per agent count: each run is a
        // fresh bus process and a fresh agents' process.
        for (let run = 1; run <= runs; run++) {
          console.log(`${system.name}, ${n} agents, run ${run} of ${runs}`);
          done.push(await once(system.name, n, tls));
        }
        (all[system.name] as Record<number, Record<Pattern, Figures>[]>)[n] = done;
        row[n] = Object.fromEntries(
          PATTERNS.filter((p) => p in (done[0] ?? {})).map((p) => [
            p,
            medians(done.map((d) => ({ ...d[p] }))),
          ]),
        ) as unknown as Record<Pattern, Figures>;
      } catch (err) {
        console.log(`  failed: ${(err as Error).message}`);
        row[n] = { error: (err as Error).message };
      }
    }
  }
  const lines = table(results, counts);
  console.log(lines.join('\n'));
  const report = saveReport('bus', 'bench:bus', quick, {
    agents: counts,
    window: WINDOW,
    seconds: SECONDS,
    payloadBytes: PAYLOAD,
    runs,
    systems: Object.fromEntries(SYSTEMS.map((s) => [s.name, s.describe])),
    results,
    everyRun: all,
  });
  const head = `Medians of ${runs} runs (\`${report.command}\`, ${report.date.slice(0, 10)}), 2 cores: the bus and the agents each have one.`;
  if (!quick && !process.env.BUS_PATTERNS)
    writeBlock('docs/BENCHMARKS.md', 'bus', report.command, [head, '', ...lines]);
}

/** One system with `n` agents: its bus process, then the agents' process. */
async function once(
  name: string,
  n: number,
  tls: { cert: string; key: string },
): Promise<Record<Pattern, Figures>> {
  const env = { ...process.env, BUS_TLS: JSON.stringify(tls), QUICWIRE_BACKEND: '' };
  let hub: ChildProcess;
  let port: string;
  if (name === 'nats') {
    port = String(20000 + Math.floor(Math.random() * 20000));
    const { mkdtempSync, writeFileSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const dir = mkdtempSync(`${tmpdir()}/bus-bench-`);
    writeFileSync(`${dir}/cert.pem`, tls.cert);
    writeFileSync(`${dir}/key.pem`, tls.key);
    hub = spawn(
      'nats-server',
      ['-a', '127.0.0.1', '-p', port, '--tls', '--tlscert', `${dir}/cert.pem`, '--tlskey', `${dir}/key.pem`],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    await line(hub, /Server is ready/, 'nats-server', 'stderr');
  } else {
    hub = spawn(process.execPath, ['--import', 'tsx', `${here}bus.ts`, '--hub', name], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    port = (await line(hub, /^READY \d+$/, `${name} bus`, 'stdout')).split(' ')[1] as string;
  }
  try {
    const agents = spawn(
      process.execPath,
      ['--import', 'tsx', `${here}bus.ts`, '--run', `${name},${n},${port}`, ...(quick ? ['--quick'] : [])],
      { env, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    try {
      return JSON.parse(await line(agents, /^\{/, `${name} agents`, 'stdout')) as Record<Pattern, Figures>;
    } finally {
      agents.kill('SIGKILL');
    }
  } finally {
    hub.kill('SIGTERM');
    setTimeout(() => hub.kill('SIGKILL'), 2000).unref();
  }
}

function line(child: ChildProcess, match: RegExp, what: string, from: 'stdout' | 'stderr'): Promise<string> {
  let err = '';
  child.stderr?.on('data', (d) => {
    err += d;
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what}: no answer in 300 s`)), 300_000);
    createInterface({ input: (from === 'stdout' ? child.stdout : child.stderr) as NodeJS.ReadableStream }).on(
      'line',
      (l) => {
        if (match.test(l)) {
          clearTimeout(timer);
          resolve(l);
        }
      },
    );
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited with ${code}: ${err.trim().split('\n').slice(-3).join(' | ')}`));
    });
  });
}

/** Latencies in ms, and how many arrived. */
class Meter {
  count = 0;
  #samples = new Float64Array(1 << 20);
  #n = 0;

  add(sentAt: number): void {
    this.count++;
    if (this.#n < this.#samples.length) this.#samples[this.#n++] = performance.now() - sentAt;
  }

  figures(seconds: number): Figures {
    const s = this.#samples.subarray(0, this.#n).sort();
    const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? Number.NaN;
    return { perSecond: this.count / seconds, p50ms: at(0.5), p99ms: at(0.99) };
  }
}

/** A payload that carries its send time. */
function payload(): Uint8Array {
  const p = new Uint8Array(PAYLOAD);
  new DataView(p.buffer).setFloat64(0, performance.now());
  return p;
}

const sentAt = (p: Uint8Array) => new DataView(p.buffer, p.byteOffset).getFloat64(0);

async function runAgents(
  system: (typeof SYSTEMS)[number],
  n: number,
  port: number,
  tls: { cert: string; key: string },
): Promise<Record<Pattern, Figures>> {
  const producers = Math.max(1, Math.floor(n / 10));
  // Where each arrival goes: the pattern running now sets it.
  let onMessage = (_p: Uint8Array, _i: number) => {};
  let onWork = (_p: Uint8Array) => {};
  const agents: BusAgent[] = [];
  // Connected a few at a time, as a fleet of agents starting up would be.
  for (let i = 0; i < n; i += 50) {
    const batch = Array.from({ length: Math.min(50, n - i) }, (_, k) => {
      const index = i + k;
      const on: AgentHandlers = { message: (p) => onMessage(p, index), work: (p) => onWork(p) };
      return system.connect(port, tls, index, index >= producers, on);
    });
    agents.push(...(await Promise.all(batch)));
  }
  const results = {} as Record<Pattern, Figures>;
  const only = process.env.BUS_PATTERNS?.split(',');
  for (const pattern of PATTERNS.filter((p) => !only || only.includes(p))) {
    const meter = new Meter();
    let running = true;
    let done: () => void = () => {};
    const finished = new Promise<void>((r) => {
      done = r;
    });
    const started = performance.now();
    if (pattern === 'targeted') {
      // Each sender keeps its share of the window in flight.
      const share = Math.max(1, Math.floor(WINDOW / n));
      const inFlight = new Int32Array(n);
      onMessage = (p, to) => {
        meter.add(sentAt(p));
        const from = (to + n - 1) % n;
        inFlight[from] = (inFlight[from] as number) - 1;
        if (running) {
          (agents[from] as BusAgent).send(to, payload());
          inFlight[from] = (inFlight[from] as number) + 1;
        }
      };
      for (let i = 0; i < n; i++) {
        for (let k = 0; k < share; k++) (agents[i] as BusAgent).send((i + 1) % n, payload());
        inFlight[i] = share;
      }
    } else if (pattern === 'request') {
      const share = Math.max(1, Math.floor(WINDOW / n));
      const loop = async (i: number) => {
        while (running) {
          const reply = await (agents[i] as BusAgent).request((i + 1) % n, payload());
          meter.add(sentAt(reply));
        }
      };
      const loops = agents.flatMap((_, i) => Array.from({ length: share }, () => loop(i)));
      void Promise.all(loops).then(() => done());
    } else if (pattern === 'broadcast') {
      // A few broadcasts in flight; one is done when every other agent has it.
      const pending = new Map<number, number>();
      let seq = 0;
      const fire = () => {
        const p = payload();
        const id = seq++;
        new DataView(p.buffer).setUint32(8, id);
        pending.set(id, n - 1);
        (agents[0] as BusAgent).broadcast(p);
      };
      onMessage = (p) => {
        meter.add(sentAt(p));
        const id = new DataView(p.buffer, p.byteOffset).getUint32(8);
        const left = (pending.get(id) ?? 1) - 1;
        if (left > 0) pending.set(id, left);
        else {
          pending.delete(id);
          if (running) fire();
        }
      };
      for (let k = 0; k < Math.max(1, Math.floor(WINDOW / n)); k++) fire();
    } else {
      // Producers keep their share in flight to the group "work".
      const share = Math.max(1, Math.floor(WINDOW / producers));
      const owner = new Map<number, number>();
      let seq = 0;
      const fire = (from: number) => {
        const p = payload();
        const id = seq++;
        new DataView(p.buffer).setUint32(8, id);
        owner.set(id, from);
        (agents[from] as BusAgent).enqueue(p);
      };
      onWork = (p) => {
        meter.add(sentAt(p));
        const id = new DataView(p.buffer, p.byteOffset).getUint32(8);
        const from = owner.get(id) as number;
        owner.delete(id);
        if (running) fire(from);
      };
      for (let i = 0; i < producers; i++) for (let k = 0; k < share; k++) fire(i);
    }
    await new Promise((r) => setTimeout(r, SECONDS * 1000));
    running = false;
    const seconds = (performance.now() - started) / 1000;
    results[pattern] = meter.figures(seconds);
    if (pattern === 'request') await finished;
    // What is still in flight drains before the next pattern.
    await new Promise((r) => setTimeout(r, 300));
    onMessage = () => {};
    onWork = () => {};
  }
  await Promise.all(agents.map((a) => a.close()));
  return results;
}

function table(
  results: Record<string, Record<number, Record<Pattern, Figures> | { error: string }>>,
  counts: number[],
): string[] {
  const head = ['agents', 'system', ...PATTERNS.flatMap((p) => [`${p} /s`, 'p50 ms', 'p99 ms'])];
  const lines = [
    `| ${head.join(' | ')} |`,
    `| ${head.map((_, i) => (i < 2 ? '---' : '---:')).join(' | ')} |`,
  ];
  for (const n of counts) {
    for (const system of SYSTEMS) {
      const r = results[system.name]?.[n];
      if (!r) continue;
      const cells =
        'error' in r
          ? [`failed: ${r.error}`]
          : PATTERNS.flatMap((p) => {
              const f = r[p] as Figures | undefined; // BUS_PATTERNS may leave some out
              return f ? [fmt(f.perSecond), fmt(f.p50ms), fmt(f.p99ms)] : ['-', '-', '-'];
            });
      lines.push(`| ${n} | ${system.name} | ${cells.join(' | ')} |`);
    }
  }
  return lines;
}

// Which role this process has (at the end: the classes above exist by then).
if (args.hub) {
  // The bus process: quicwire's bus or the WebSocket hub.
  const tls = JSON.parse(process.env.BUS_TLS as string);
  const hub = args.hub.startsWith('quicwire-bus') ? await listenQuicBus(tls) : await listenWsHub(tls);
  console.log(`READY ${hub.port}`);
  process.once('SIGTERM', () => void hub.close().then(() => process.exit(0)));
} else if (args.run) {
  // The agents' process: `--run system,agents,port`.
  const [name, n, port] = args.run.split(',') as [string, string, string];
  const system = SYSTEMS.find((s) => s.name === name);
  if (!system) throw new Error(`unknown system ${name}`);
  const figures = await runAgents(system, Number(n), Number(port), JSON.parse(process.env.BUS_TLS as string));
  console.log(JSON.stringify(figures));
  process.exit(0);
} else {
  await main();
}
