// Run inside the temporary project made by test-pack.mjs: imports the installed package by
// name and prints one JSON line with what happened.
import { backend, generateDevCert, initWasm, QuicServer, QuicTransport } from 'quicwire';

try {
  if (!process.argv.includes('--no-init')) await initWasm();
  const { cert, key } = generateDevCert();
  const server = await QuicServer.listen({ host: '127.0.0.1', port: 0, cert, key });
  let delivered = 0;
  server.onMessage(() => delivered++);
  server.onRequest((msg) => ({ sum: msg.args[0] + msg.args[1] }));
  const client = new QuicTransport({ ca: cert });
  const conn = await client.connect('127.0.0.1', server.port);
  await client.sendBatch(
    conn,
    Array.from({ length: 100 }, (_, i) => ({ i })),
  );
  const reply = await client.request(conn, { args: [1, 2] });
  await client.close();
  await server.close();
  console.log(JSON.stringify({ backend: backend(), delivered, reply }));
} catch (err) {
  console.log(JSON.stringify({ error: `${err.code} ${err.message}` }));
}
