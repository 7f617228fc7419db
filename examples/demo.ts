// quicwire demo: one server and 8 agents exchanging messages and requests over QUIC on
// loopback for a few seconds (`--seconds N`), then throughput, latency and pool stats.

import { backend, generateDevCert, initWasm, QuicServer, QuicTransport } from '../ts/index.js';

await initWasm(); // QUICWIRE_BACKEND=wasm npm run demo runs it on the wasm engine

const AGENTS = 8;
const IN_FLIGHT = 32;
const BATCH = 64;
const secondsArg = process.argv.indexOf('--seconds');
const seconds = secondsArg > 0 ? Number(process.argv[secondsArg + 1]) : 5;

interface Task {
  type: 'task';
  agent: number;
  seq: number;
  payload: { tool: string; args: number[] };
}

const { cert, key } = generateDevCert();
const server = await QuicServer.listen({ host: '127.0.0.1', port: 0, cert, key });
let tasksReceived = 0;
server.onMessage(() => {
  tasksReceived++;
});
server.onRequest((msg) => {
  const { args } = msg as { args: number[] };
  return { sum: args.reduce((a, b) => a + b, 0) };
});
// The server talks back: a tick to every agent ten times a second.
const ticker = setInterval(
  () => void server.broadcast({ type: 'tick', at: Date.now() }).catch(() => {}),
  100,
);

console.log(
  `quicwire demo (${backend()} backend): server on 127.0.0.1:${server.port}, ${AGENTS} agents, ${seconds} s`,
);

const deadline = performance.now() + seconds * 1000;
const latencies: number[] = [];
const ticksReceived = new Array<number>(AGENTS).fill(0);
const transports: QuicTransport[] = [];

async function agent(id: number): Promise<void> {
  const t = new QuicTransport({ ca: cert });
  transports.push(t);
  const conn = await t.connect('127.0.0.1', server.port);
  void (async () => {
    for await (const _tick of conn) ticksReceived[id] = (ticksReceived[id] ?? 0) + 1;
  })();
  let seq = 0;
  const sender = (async () => {
    while (performance.now() < deadline) {
      const batch: Task[] = [];
      for (let i = 0; i < BATCH; i++) {
        batch.push({ type: 'task', agent: id, seq: seq++, payload: { tool: 'search', args: [id, i] } });
      }
      await t.sendBatch(conn, batch);
    }
  })();
  const requester = async () => {
    while (performance.now() < deadline) {
      const started = performance.now();
      await t.request(conn, { op: 'sum', args: [id, seq, 1] });
      latencies.push(performance.now() - started);
    }
  };
  await Promise.all([sender, ...Array.from({ length: IN_FLIGHT }, requester)]);
}

const started = performance.now();
const progress = setInterval(() => {
  const elapsed = (performance.now() - started) / 1000;
  process.stdout.write(
    `\r  ${elapsed.toFixed(0)} s: ${tasksReceived.toLocaleString()} messages, ${latencies.length.toLocaleString()} requests`,
  );
}, 1000);
await Promise.all(Array.from({ length: AGENTS }, (_, i) => agent(i)));
const elapsed = (performance.now() - started) / 1000;
clearInterval(progress);
clearInterval(ticker);
process.stdout.write('\n\n');

latencies.sort((a, b) => a - b);
const pct = (p: number) =>
  latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))] ?? 0;
console.table({
  'messages delivered': { value: tasksReceived.toLocaleString() },
  'messages/s': { value: Math.round(tasksReceived / elapsed).toLocaleString() },
  'requests answered': { value: latencies.length.toLocaleString() },
  'requests/s': { value: Math.round(latencies.length / elapsed).toLocaleString() },
  'request p50 (ms)': { value: pct(50).toFixed(3) },
  'request p99 (ms)': { value: pct(99).toFixed(3) },
  'server ticks received': { value: ticksReceived.reduce((a, b) => a + b, 0) },
});

console.log('pool stats per agent:');
console.table(
  transports.map((t, i) => {
    const s = t.getPoolStats();
    return {
      agent: i,
      created: s.created,
      reused: s.reused,
      active: s.active,
      idle: s.idle,
      'messages out': s.totals.messagesOut,
      'messages in': s.totals.messagesIn,
      'requests out': s.totals.requestsOut,
      'MB out': +(s.totals.bytesOut / 1e6).toFixed(2),
      'rtt ms': +s.totals.rttMs.toFixed(3),
      'lost packets': s.totals.lostPackets,
    };
  }),
);
const ss = server.stats();
console.log(
  `server: ${ss.connections} connections, ${ss.totals.messagesIn.toLocaleString()} messages in, ${ss.totals.requestsIn.toLocaleString()} requests in`,
);

await Promise.all(transports.map((t) => t.close()));
await server.close();
