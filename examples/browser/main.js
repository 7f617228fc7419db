// The browser example: a TLS 1.3 QUIC handshake and a message exchange between two engines
// inside one page. Bundlers resolve `quicwire` to the same file through the package's
// "browser" export; here it is imported from the build directly.
import {
  backend,
  generateDevCert,
  initWasm,
  QuicServer,
  QuicTransport,
} from '../../dist/browser/quicwire.js';

const log = (line) => {
  document.getElementById('log').textContent += `${line}\n`;
};

async function main() {
  // ?wasm=<url> passes the .wasm's URL explicitly, as a bundler's asset import would.
  const wasmUrl = new URLSearchParams(location.search).get('wasm');
  await initWasm(wasmUrl ? new URL(wasmUrl, location.href) : undefined);

  const { cert, key } = generateDevCert(['127.0.0.1']);
  const server = await QuicServer.listen({ host: '127.0.0.1', port: 0, cert, key });
  const inbox = [];
  server.onMessage((msg) => inbox.push(msg));
  server.onRequest((msg) => ({ echo: msg, at: 'server' }));
  log(`server on 127.0.0.1:${server.port} (${backend()} engine)`);

  const client = new QuicTransport({ ca: cert }); // certificate verification stays on
  const conn = await client.connect('127.0.0.1', server.port);
  log(`connected, encoding ${conn.encoding}`);
  const started = performance.now();
  const n = 1000;
  await client.sendBatch(
    conn,
    Array.from({ length: n }, (_, i) => ({ seq: i })),
  );
  const reply = await client.request(conn, { hello: 'from the page' });
  const ms = performance.now() - started;
  log(`${inbox.length} messages delivered and a reply in ${ms.toFixed(1)} ms: ${JSON.stringify(reply)}`);

  const stats = client.getPoolStats();
  await client.close();
  await server.close({ graceful: true });
  return {
    backend: backend(),
    delivered: inbox.length,
    inOrder: inbox.every((m, i) => m.seq === i),
    reply,
    created: stats.created,
    rttMs: stats.connections[0]?.rttMs,
  };
}

window.quicwireResult = main().catch((err) => {
  log(`failed: ${err.code ?? ''} ${err.message}`);
  return { error: `${err.code ?? ''} ${err.message}` };
});
