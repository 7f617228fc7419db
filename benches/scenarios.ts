// The six scenarios, run in the client process against a server process. Every transport
// gets the same payloads. Each returns its figures; the harness keeps the median of runs.
import { readFileSync } from 'node:fs';
import type { BenchClient, Tls, Transport } from './types.js';

export interface Sizes {
  bulkBytes: number;
  /** Sent on a stream of its own before bulk is timed (bounded to a second). */
  bulkWarmupBytes: number;
  /** Bulk, ping-pong and concurrency stop here, so a slow transport is measured, not
   *  waited for. */
  boundSeconds: number;
  smallSeconds: number;
  /** Round trips and requests: enough for a second or more at full speed, so a run
   *  measures each transport's steady state rather than its JIT's warm-up
   *  (docs/BENCHMARKS.md has what a shorter window did). */
  pingPongs: number;
  concurrentTotal: number;
  setups: number;
  idleConnections: number;
}

export const FULL: Sizes = {
  bulkBytes: 256 << 20,
  bulkWarmupBytes: 256 << 20,
  boundSeconds: 20,
  smallSeconds: 5,
  pingPongs: 10_000,
  concurrentTotal: 200_000,
  setups: 200,
  idleConnections: 500,
};

/** `--quick`: every scenario for a moment, so the harness never rots (CI runs this). */
export const QUICK: Sizes = {
  bulkBytes: 4 << 20,
  bulkWarmupBytes: 1 << 20,
  boundSeconds: 2,
  smallSeconds: 0.3,
  pingPongs: 50,
  concurrentTotal: 500,
  setups: 5,
  idleConnections: 10,
};

export type Figures = Record<string, number>;

/** The value at fraction `p` of ascending `sorted`. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? 0;
}

/** Resident set size of a process, in bytes (Linux /proc). */
export function rss(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+) kB/);
  return Number(line?.[1] ?? 0) * 1024;
}

const tick = () => new Promise<void>((r) => setImmediate(r));
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export async function bulk(c: BenchClient, s: Sizes): Promise<Figures> {
  const chunk = new Uint8Array(65_536).fill(1);
  const count = s.bulkBytes / chunk.length;
  // Not timed, as ping-pong's first round is not: a fresh process's JIT, the congestion
  // window and the heaps reach their working state first, so bulk measures throughput.
  await c.bulk(chunk, s.bulkWarmupBytes / chunk.length, performance.now() + 1000);
  const t0 = performance.now();
  // Bounded: a slow transport stops after boundSeconds and is measured on what it moved.
  const delivered = await c.bulk(chunk, count, t0 + s.boundSeconds * 1000);
  const seconds = (performance.now() - t0) / 1000;
  return { mbPerSec: (delivered * chunk.length) / 1e6 / seconds, mib: (delivered * chunk.length) / 2 ** 20 };
}

export async function small(c: BenchClient, s: Sizes): Promise<Figures> {
  const payload = new Uint8Array(64).fill(2);
  const before = await c.received();
  const t0 = performance.now();
  const end = t0 + s.smallSeconds * 1000;
  let sent = 0;
  while (performance.now() < end) {
    for (let i = 0; i < 256; i++) {
      const wait = c.send(payload);
      sent++;
      if (wait) await wait;
    }
  }
  await c.flush();
  // Delivered means counted by the server: wait until it has every one (at most 30 s).
  let received = (await c.received()) - before;
  while (received < sent && performance.now() - t0 < 30_000) {
    await sleep(1);
    received = (await c.received()) - before;
  }
  const seconds = (performance.now() - t0) / 1000;
  return { messagesPerSec: received / seconds, sent, lost: sent - received };
}

export async function pingPong(c: BenchClient, s: Sizes): Promise<Figures> {
  const payload = new Uint8Array(1024).fill(3);
  // Warm-up as long as the measurement (a quarter of the bound at most): both processes are
  // new, and until V8 has optimized the code on the path a run measures its tiers, not the
  // transport.
  const warm = performance.now() + s.boundSeconds * 250;
  for (let i = 0; i < s.pingPongs && performance.now() < warm; i++) await c.request(payload);
  const times: number[] = [];
  const until = performance.now() + s.boundSeconds * 1000;
  for (let i = 0; i < s.pingPongs && performance.now() < until; i++) {
    const t0 = performance.now();
    const echo = await c.request(payload);
    times.push((performance.now() - t0) * 1000);
    if (echo.length !== payload.length) throw new Error(`echo of ${echo.length} bytes`);
  }
  times.sort((a, b) => a - b);
  return { p50us: percentile(times, 0.5), p99us: percentile(times, 0.99) };
}

/** `total` 1 KiB requests, 100 in flight, until `until`; the latency of each (µs). */
async function hundredInFlight(c: BenchClient, total: number, until: number): Promise<number[]> {
  const payload = new Uint8Array(1024).fill(4);
  const times: number[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: 100 }, async () => {
      while (next++ < total && performance.now() < until) {
        const r0 = performance.now();
        await c.request(payload);
        times.push((performance.now() - r0) * 1000);
      }
    }),
  );
  return times;
}

export async function concurrency(c: BenchClient, s: Sizes): Promise<Figures> {
  // Warm-up: a tenth, not counted, for a twentieth of the time bound at most,
  // so every transport is measured hot.
  await hundredInFlight(c, s.concurrentTotal / 10, performance.now() + s.boundSeconds * 50);
  const t0 = performance.now();
  // A slow transport is measured on what it answered by the bound.
  const times = await hundredInFlight(c, s.concurrentTotal, t0 + s.boundSeconds * 1000);
  const seconds = (performance.now() - t0) / 1000;
  times.sort((a, b) => a - b);
  return {
    requestsPerSec: times.length / seconds,
    p50us: percentile(times, 0.5),
    p99us: percentile(times, 0.99),
  };
}

export async function setup(t: Transport, port: number, tls: Tls, s: Sizes): Promise<Figures> {
  const payload = new Uint8Array(1024).fill(5);
  const times: number[] = [];
  for (let i = 0; i < s.setups + 3; i++) {
    const t0 = performance.now();
    const c = await t.connect(port, tls);
    await c.request(payload);
    const ms = performance.now() - t0;
    if (i >= 3) times.push(ms); // the first few warm up code paths, not the network
    await c.close();
  }
  times.sort((a, b) => a - b);
  return { p50ms: percentile(times, 0.5), p99ms: percentile(times, 0.99) };
}

export async function memory(
  t: Transport,
  port: number,
  tls: Tls,
  serverPid: number,
  s: Sizes,
): Promise<Figures> {
  const payload = new Uint8Array(16);
  // One connection first, so both baselines include the transport's fixed costs.
  const first = await t.connect(port, tls);
  await first.request(payload);
  await sleep(500);
  globalThis.gc?.();
  const server0 = rss(serverPid);
  const client0 = process.memoryUsage().rss;
  const clients: BenchClient[] = [];
  for (let i = 0; i < s.idleConnections; i++) {
    const c = await t.connect(port, tls);
    await c.request(payload); // established and used once, then idle
    clients.push(c);
    if (i % 50 === 0) await tick();
  }
  await sleep(1000);
  globalThis.gc?.();
  const n = s.idleConnections;
  const serverKiBPerConn = (rss(serverPid) - server0) / n / 1024;
  const clientKiBPerConn = (process.memoryUsage().rss - client0) / n / 1024;
  // Ping-pong again, on the first connection, while the server holds all the idle ones: a
  // server's cost per request must not grow with the connections it holds.
  const crowded = await pingPong(first, s);
  for (const c of [first, ...clients]) await c.close();
  return { serverKiBPerConn, clientKiBPerConn, crowdedP50us: crowded.p50us as number };
}
