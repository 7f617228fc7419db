// The page of `npm run bench:browser`: the same three jobs from Chromium, through quicwire's
// QuicTransport over the browser's WebTransport (and over QUIC in a WebSocket), and through
// the browser's WebSocket to a `ws` server. Each job moves the same 64-byte payloads:
//   messages   N messages one way, until the server's application has them all;
//   requests   M requests with 100 in flight;
//   pingpong   sequential requests, each one's round trip timed.
import { initWasm, QuicTransport } from '/dist/browser/quicwire.js';

const PAYLOAD = new Uint8Array(64).fill(7);
const MESSAGES = 20_000;
const REQUESTS = 5_000;
const IN_FLIGHT = 100;
const PINGS = 500;
/** Messages go in batches of this many, as a competent user of either sends in bulk:
 *  quicwire's sendBatch, and for ws one frame of length-prefixed messages. */
const BATCH = 1_000;
const WS_BATCH = 0;
const WS_REQUEST = 1;
const WS_COUNT = 2;

function quantile(sorted, q) {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

async function timeJobs({ send, request }) {
  let started = performance.now();
  await send(MESSAGES);
  const messagesPerSecond = MESSAGES / ((performance.now() - started) / 1000);
  started = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (next < REQUESTS) {
        next++;
        await request();
      }
    }),
  );
  const requestsPerSecond = REQUESTS / ((performance.now() - started) / 1000);
  const times = [];
  for (let i = 0; i < PINGS; i++) {
    const t0 = performance.now();
    await request();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return { messagesPerSecond, requestsPerSecond, p50ms: quantile(times, 0.5), p99ms: quantile(times, 0.99) };
}

/** quicwire's QuicTransport over the browser's WebTransport (or, `ca` given, QUIC in a
 *  WebSocket to the same port). */
async function quicwire(port, hash, ca) {
  await initWasm();
  const reach = ca
    ? { transport: 'tcp', ca }
    : { transport: 'webtransport', webTransport: { path: '/bench', certificateHashes: [hash] } };
  const t = new QuicTransport({ ...reach, encoding: 'raw' });
  try {
    const conn = await t.connect('127.0.0.1', port);
    const batch = Array.from({ length: BATCH }, () => PAYLOAD);
    return await timeJobs({
      async send(n) {
        const sends = [];
        for (let sent = 0; sent < n; sent += BATCH) sends.push(t.sendBatch(conn, batch));
        await Promise.all(sends);
      },
      request: () => t.request(conn, PAYLOAD),
    });
  } finally {
    await t.close();
  }
}

async function websocket(port) {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/`);
  ws.binaryType = 'arraybuffer';
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = reject;
  });
  const waiting = new Map();
  let counted;
  ws.onmessage = (e) => {
    const data = new Uint8Array(e.data);
    if (data.length === 4) {
      counted?.(new Uint32Array(e.data)[0]);
      return;
    }
    const id = new DataView(e.data).getUint32(1);
    waiting.get(id)?.();
    waiting.delete(id);
  };
  // One frame: its kind, then each message as a 2-byte length and its bytes.
  const batch = new Uint8Array(1 + BATCH * (2 + PAYLOAD.length));
  batch[0] = WS_BATCH;
  for (let i = 0, at = 1; i < BATCH; i++, at += 2 + PAYLOAD.length) {
    new DataView(batch.buffer).setUint16(at, PAYLOAD.length);
    batch.set(PAYLOAD, at + 2);
  }
  let nextId = 0;
  try {
    return await timeJobs({
      async send(n) {
        const count = new Promise((resolve) => {
          counted = resolve;
        });
        for (let sent = 0; sent < n; sent += BATCH) ws.send(batch);
        ws.send(Uint8Array.of(WS_COUNT));
        const got = await count;
        if (got !== n) throw new Error(`the ws server counted ${got} of ${n}`);
      },
      request() {
        const id = nextId++;
        const frame = new Uint8Array(5 + PAYLOAD.length);
        frame[0] = WS_REQUEST;
        new DataView(frame.buffer).setUint32(1, id);
        frame.set(PAYLOAD, 5);
        return new Promise((resolve) => {
          waiting.set(id, resolve);
          ws.send(frame);
        });
      },
    });
  } finally {
    ws.close();
  }
}

window.bench = {
  quicwire: (port, hash) => quicwire(port, hash),
  quicwireTcp: (port, hash, ca) => quicwire(port, hash, ca),
  websocket,
};
