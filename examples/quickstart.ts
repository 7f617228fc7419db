// The README's example, kept runnable: `npx tsx examples/quickstart.ts`.
import { generateDevCert, initWasm, QuicServer, QuicTransport } from 'quicwire';

await initWasm(); // loads the wasm engine when that is the backend; a no-op on native
const { cert, key } = generateDevCert(); // self-signed, for localhost/127.0.0.1/::1
const server = await QuicServer.listen({ host: '127.0.0.1', port: 0, cert, key });
server.onMessage((msg, peer) => console.log('from', peer.peer, msg));
server.onRequest(async (msg) => {
  const { args } = msg as { args: [number, number] };
  return { sum: args[0] + args[1] };
});

const t = new QuicTransport({ ca: cert }); // verification is on: trust our dev CA
const conn = await t.connect('127.0.0.1', server.port); // pooled by "host:port"
await t.send(conn, { type: 'task', id: 1 }); // resolves once the server has it
await t.sendBatch(conn, [{ id: 2 }, { id: 3 }]);
const reply = await t.request(conn, { op: 'sum', args: [1, 2] }, { timeoutMs: 5000 });
console.log(reply, t.getPoolStats().created);
await t.close();
await server.close({ graceful: true });

export { reply };
