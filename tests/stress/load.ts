// Load against one server process: many client connections each with requests in flight,
// then many idle connections held open. Every request must be answered with its own echo,
// every idle connection must still answer after the hold, and nothing may fail.
//
//   npm run load -- [--connections 1000] [--concurrent 10] [--requests 10] [--idle 10000] [--hold 30]
//
// (the README's long form; tests/stress.test.ts runs a short one). The client backend is
// QUICWIRE_BACKEND's. Prints what it held and the RSS each connection cost on each side.

import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { initWasm, QuicTransport } from '../../ts/index.js';
import { failures, inWaves, mib, settle, snapshot, startServer } from './process.js';

export interface LoadOptions {
  /** Busy phase: this many connections, each with `concurrent` request loops of `requests`. */
  connections: number;
  concurrent: number;
  requests: number;
  /** Idle phase: this many connections, held `holdSeconds`. */
  idle: number;
  holdSeconds: number;
  log?: (line: string) => void;
}

export interface LoadResult {
  errors: string[];
  requests: number;
  requestsPerSec: number;
  idleHeld: number;
  serverKiBPerConn: number;
  clientKiBPerConn: number;
  /** Server connections still open once every client had closed. */
  leftOpen: number;
}

export async function runLoad(o: LoadOptions): Promise<LoadResult> {
  const log = o.log ?? (() => {});
  await initWasm();
  const server = await startServer(o.connections + o.idle + 16);
  const target = `127.0.0.1:${server.port}`;
  const { errors, fail } = failures();
  // One QuicTransport per connection: its pool holds one connection per host:port.
  // The pool closes connections idle for idleTimeoutMs: held ones must outlast the hold.
  const idleTimeoutMs = (o.holdSeconds + 60) * 1000;
  const open = async (count: number) => {
    const clients: QuicTransport[] = [];
    await inWaves(count, 64, async () => {
      const t = new QuicTransport({ ca: server.ca, maxMessageSize: 1 << 20, idleTimeoutMs });
      clients.push(t);
      await t.connect('127.0.0.1', server.port).catch(fail('connect'));
    });
    return clients;
  };
  try {
    // Busy: connections × concurrent × requests, each answer checked against its question.
    const busy = await open(o.connections);
    log(`${busy.length} connections open`);
    let answered = 0;
    const t0 = performance.now();
    await Promise.all(
      busy.flatMap((t, c) =>
        Array.from({ length: o.concurrent }, async (_, k) => {
          for (let i = 0; i < o.requests; i++) {
            const question = { c, k, i };
            const reply = (await t.request(target, question).catch(fail('request'))) as typeof question;
            if (reply?.c === c && reply.k === k && reply.i === i) answered++;
            else if (reply)
              errors.push(`connection ${c} got ${JSON.stringify(reply)} for ${JSON.stringify(question)}`);
          }
        }),
      ),
    );
    const seconds = (performance.now() - t0) / 1000;
    log(`${answered} requests answered in ${seconds.toFixed(1)} s (${Math.round(answered / seconds)}/s)`);
    await Promise.all(busy.map((t) => t.close()));

    // Idle: RSS per connection on each side, from a baseline with the busy ones gone.
    const server0 = await server.snapshot();
    const client0 = snapshot();
    const idle = await open(o.idle);
    // Each used once, as an application would, then left alone.
    await inWaves(idle.length, 128, (i) =>
      (idle[i] as QuicTransport)
        .request(target, i)
        .then(() => {})
        .catch(fail('first request')),
    );
    const server1 = await server.snapshot();
    const client1 = snapshot();
    const serverKiBPerConn = (server1.rss - server0.rss) / o.idle / 1024;
    const clientKiBPerConn = (client1.rss - client0.rss) / o.idle / 1024;
    log(
      `${server1.connections} idle connections: server RSS ${mib(server0.rss)} -> ${mib(server1.rss)} MiB ` +
        `(${serverKiBPerConn.toFixed(1)} KiB each), client ${mib(client0.rss)} -> ${mib(client1.rss)} MiB ` +
        `(${clientKiBPerConn.toFixed(1)} KiB each)`,
    );
    for (let s = 0; s < o.holdSeconds; s += 10) {
      await new Promise((r) => setTimeout(r, Math.min(10, o.holdSeconds - s) * 1000));
      const now = await server.snapshot();
      log(
        `held ${Math.min(s + 10, o.holdSeconds)} s: ${now.connections} connections, server RSS ${mib(now.rss)} MiB`,
      );
    }
    // Still there, every one: a request on each after the hold.
    let idleHeld = 0;
    await inWaves(idle.length, 128, async (i) => {
      const t = idle[i] as QuicTransport;
      const before = t.getPoolStats().created;
      const reply = await t.request(target, i).catch(fail('request after hold'));
      // Answered on the connection held, not a new one dialed in its place.
      if (reply === i && t.getPoolStats().created === before) idleHeld++;
    });
    log(`${idleHeld} of ${o.idle} idle connections answered after ${o.holdSeconds} s`);
    await Promise.all(idle.map((t) => t.close()));
    const { connections: leftOpen } = await settle(server.snapshot, (s) => s.connections === 0);
    return {
      errors,
      requests: answered,
      requestsPerSec: answered / seconds,
      idleHeld,
      serverKiBPerConn,
      clientKiBPerConn,
      leftOpen,
    };
  } finally {
    await server.stop();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { values } = parseArgs({
    options: {
      connections: { type: 'string', default: '1000' },
      concurrent: { type: 'string', default: '10' },
      requests: { type: 'string', default: '10' },
      idle: { type: 'string', default: '10000' },
      hold: { type: 'string', default: '30' },
    },
  });
  const result = await runLoad({
    connections: Number(values.connections),
    concurrent: Number(values.concurrent),
    requests: Number(values.requests),
    idle: Number(values.idle),
    holdSeconds: Number(values.hold),
    log: (line) => console.log(line),
  });
  console.log(JSON.stringify(result));
  const ok = result.errors.length === 0 && result.idleHeld === Number(values.idle) && result.leftOpen === 0;
  console.log(ok ? 'load: ok' : `load: FAILED ${result.errors.join('; ')}`);
  process.exit(ok ? 0 : 1);
}
