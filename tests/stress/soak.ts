// Soak: mixed traffic against one server process for a long time, with connections made and
// dropped all along. RSS of both processes is sampled after garbage collection; once warmed up
// it must stay flat (growth under 5 %), and when it is over, every connect/disconnect cycle
// must have left no fd, handle or server connection behind.
//
//   npm run soak -- [--minutes 10] [--cycles 100000] [--seconds N] [--warmup 0.25]
//
// Run it with --expose-gc and STEADY_HEAP's flags (the npm script does), as the server is.
// Traffic: 8 long-lived connections, each looping over a batch of 32 messages, a request and
// now and then a 64 KiB message. Churn: 4 workers dialing, using and dropping a connection
// (through the pool, and every 50th cycle a whole new QuicTransport) until `cycles` are done
// and the time is up. tests/stress.test.ts runs a short one (as a child process, so its
// flags hold). Exits 1 on any failure.

import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { initWasm, QuicTransport } from '../../ts/index.js';
import { failures, mib, type Snapshot, settle, snapshot, startServer } from './process.js';

export interface SoakOptions {
  seconds: number;
  cycles: number;
  /** Share of the samples treated as warm-up (default 0.25). */
  warmup?: number;
  log?: (line: string) => void;
}

export interface SoakResult {
  errors: string[];
  cycles: number;
  messages: number;
  requests: number;
  /** RSS growth after warm-up, as a fraction: the last quarter of the samples against the
   *  first quarter after warm-up (medians). */
  serverGrowth: number;
  clientGrowth: number;
  /** What was left open at the end that was not open at the start. */
  leaked: { clientFds: number; clientHandles: number; serverFds: number; serverConnections: number };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;

/** Growth of the last quarter's median over the first quarter's once the warm-up share is
 *  dropped. Quarters, not tenths: over a one-minute run a tenth is three samples, and the
 *  allocator's swings (5-7 % between samples of a steady client) then made a leak of nothing. */
function growth(samples: number[], warmup: number): number {
  const steady = samples.slice(Math.floor(samples.length * warmup));
  const quarter = Math.max(1, Math.floor(steady.length / 4));
  return median(steady.slice(-quarter)) / median(steady.slice(0, quarter)) - 1;
}

export async function runSoak(o: SoakOptions): Promise<SoakResult> {
  const log = o.log ?? (() => {});
  await initWasm();
  const server = await startServer(1000);
  const target = `127.0.0.1:${server.port}`;
  const { errors, fail } = failures();
  const server0 = await server.snapshot(); // opens the probe first: it stays open throughout
  const client0 = snapshot();
  const end = performance.now() + o.seconds * 1000;
  let messages = 0;
  let requests = 0;
  let cycles = 0;
  const samples: { client: Snapshot; server: Snapshot }[] = [];
  try {
    const traffic = Array.from({ length: 8 }, async (_, w) => {
      const t = new QuicTransport({ ca: server.ca, maxMessageSize: 1 << 20 });
      const big = new Uint8Array(64 << 10).fill(w);
      for (let round = 0; performance.now() < end && errors.length === 0; round++) {
        const batch = Array.from({ length: 32 }, (_, i) => ({ w, round, i }));
        await t.sendBatch(target, batch).catch(fail('sendBatch'));
        messages += batch.length;
        const reply = (await t.request(target, { w, round }).catch(fail('request'))) as { round?: number };
        if (reply?.round !== round) errors.push(`worker ${w} round ${round}: wrong reply`);
        requests++;
        if (round % 16 === 0) {
          await t.send(target, big).catch(fail('send 64 KiB'));
          messages++;
        }
      }
      await t.close();
    });
    const churn = Array.from({ length: 4 }, async () => {
      let t = new QuicTransport({ ca: server.ca });
      while ((cycles < o.cycles || performance.now() < end) && errors.length === 0) {
        const conn = await t.connect('127.0.0.1', server.port).catch(fail('connect'));
        if (!conn) break;
        if ((await conn.request(cycles).catch(fail('churn request'))) === undefined) break;
        await t.disconnect(conn);
        if (++cycles % 50 === 0) {
          await t.close();
          t = new QuicTransport({ ca: server.ca });
        }
      }
      await t.close();
    });
    const sampler = (async () => {
      const every = Math.max(1000, (o.seconds * 1000) / 200);
      while (performance.now() < end && errors.length === 0) {
        await new Promise((r) => setTimeout(r, every));
        const sample = { client: snapshot(), server: await server.snapshot() };
        samples.push(sample);
        if (samples.length % 10 === 0) {
          log(
            `${Math.round(samples.length * (every / 1000))} s: ${cycles} cycles, ${messages} messages, ` +
              `${requests} requests; RSS (heap) client ${mib(sample.client.rss)} (${mib(sample.client.heap)}) MiB, server ` +
              `${mib(sample.server.rss)} (${mib(sample.server.heap)}) MiB`,
          );
        }
      }
    })();
    await Promise.all([...traffic, ...churn, sampler]);

    // Everything closed: wait for the server to see it, then compare with the start.
    const after = await settle(server.snapshot, (s) => s.connections <= server0.connections);
    const client = await settle(snapshot, (c) => c.fds <= client0.fds && c.handles <= client0.handles, 50);
    const warmup = o.warmup ?? 0.25;
    const result = {
      errors,
      cycles,
      messages,
      requests,
      serverGrowth: growth(
        samples.map((s) => s.server.rss),
        warmup,
      ),
      clientGrowth: growth(
        samples.map((s) => s.client.rss),
        warmup,
      ),
      leaked: {
        clientFds: client.fds - client0.fds,
        clientHandles: client.handles - client0.handles,
        serverFds: after.fds - server0.fds,
        serverConnections: after.connections - server0.connections,
      },
    };
    log(
      `${cycles} connect/disconnect cycles, ${messages} messages, ${requests} requests in ${o.seconds} s; ` +
        `RSS growth after warm-up: server ${(result.serverGrowth * 100).toFixed(1)} %, client ` +
        `${(result.clientGrowth * 100).toFixed(1)} %; left behind: ${JSON.stringify(result.leaked)}`,
    );
    return result;
  } finally {
    await server.stop();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { values } = parseArgs({
    options: {
      minutes: { type: 'string', default: '10' },
      seconds: { type: 'string' },
      cycles: { type: 'string', default: '100000' },
      warmup: { type: 'string', default: '0.25' },
    },
  });
  const result = await runSoak({
    seconds: values.seconds ? Number(values.seconds) : Number(values.minutes) * 60,
    cycles: Number(values.cycles),
    warmup: Number(values.warmup),
    log: (line) => console.log(line),
  });
  console.log(JSON.stringify(result));
  const leaked = Object.values(result.leaked).some((n) => n > 0);
  const ok =
    result.errors.length === 0 &&
    result.cycles >= Number(values.cycles) &&
    result.serverGrowth < 0.05 &&
    result.clientGrowth < 0.05 &&
    !leaked;
  console.log(ok ? 'soak: ok' : `soak: FAILED ${result.errors.join('; ')}`);
  process.exit(ok ? 0 : 1);
}
