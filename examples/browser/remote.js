// A page talking to a quicwire server in Node, in one of two ways:
// - `?transport=webtransport&hash=HASH` (the server listens with `webTransport`): the
//   browser's own WebTransport, to `https://host:port{path}`, trusting the certificate of
//   that SHA-256 hash (a dev certificate's `hash`);
// - otherwise `transport: 'tcp'`, QUIC inside a WebSocket to the server's port (the server
//   listens with `tcp: true`), checked against `?ca=PEM`.
// Messages and requests both ways, a large payload, a handler's error, and the server closing.
import { backend, initWasm, QuicTransport } from '../../dist/browser/quicwire.js';

const params = new URLSearchParams(location.search);
const log = (line) => {
  document.getElementById('log').textContent += `${line}\n`;
};
const N = 1000;

async function main() {
  await initWasm();
  const reach =
    params.get('transport') === 'webtransport'
      ? {
          transport: 'webtransport',
          webTransport: { path: params.get('path') ?? '/', certificateHashes: [params.get('hash')] },
        }
      : { transport: 'tcp', ca: params.get('ca') };
  const t = new QuicTransport({ ...reach, maxMessageSize: 16 << 20 });
  // What the server asks the page.
  t.onRequest((msg) => ({ fromPage: msg }));
  const conn = await t.connect(params.get('host') ?? '127.0.0.1', Number(params.get('port')));
  log(`connected over ${conn.carrier}, encoding ${conn.encoding}`);

  const started = performance.now();
  await t.sendBatch(
    conn,
    Array.from({ length: N }, (_, n) => ({ n })),
  );
  const counted = await t.request(conn, { op: 'count' });
  const replies = await Promise.all(Array.from({ length: N }, (_, i) => t.request(conn, { i })));
  const echoed = replies.filter((r, i) => r?.i === i).length;
  log(`${counted} messages and ${echoed} requests in ${(performance.now() - started).toFixed(0)} ms`);

  const big = new Uint8Array(8 << 20).map((_, i) => i % 251);
  const back = await t.request(conn, big);
  const bigIntact = back.length === big.length && back.every((b, i) => b === i % 251);
  const handlerError = await t.request(conn, { op: 'fail' }).then(
    () => 'resolved',
    (err) => err.code,
  );

  // The server pushes messages, then asks the page requests.
  const pushing = t.request(conn, { op: 'push', n: N });
  let pushedInOrder = true;
  for (let i = 0; i < N; i++) {
    const msg = await t.receive(conn, { timeoutMs: 10_000 });
    pushedInOrder &&= msg?.pushed === i;
  }
  await pushing;
  const answered = await t.request(conn, { op: 'ask', n: N });
  log(`${N} messages pushed, ${answered} requests answered by the page`);

  // The server closes: what comes after fails with a code, not silence.
  await t.request(conn, { op: 'close' });
  const afterClose = await new Promise((r) => setTimeout(r, 500)).then(() =>
    t.request(conn, 'late', { timeoutMs: 5000 }).then(
      () => 'resolved',
      (err) => err.code,
    ),
  );
  log(`after the server closed: ${afterClose}`);
  await t.close();
  return {
    backend: backend(),
    carrier: conn.carrier,
    counted,
    echoed,
    bigIntact,
    handlerError,
    pushedInOrder,
    answered,
    afterClose,
  };
}

window.quicwireResult = main().catch((err) => {
  log(`failed: ${err.code ?? ''} ${err.message}`);
  return { error: `${err.code ?? ''} ${err.message}` };
});
