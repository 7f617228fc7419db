// A server for `npm run bench:browser`, in a process of its own: `quicwire` (a QuicServer
// taking WebTransport sessions at /bench and QUIC in WebSockets, on the native backend) or `ws` (a `ws` server).
// Both take 64-byte messages and echo requests; the ws server says how many messages came
// when asked (a quicwire send resolves once the server's handler had the message).
// Prints `READY port` once listening.
import { WebSocketServer } from 'ws';
import { QuicServer } from '../dist/index.js';

const system = process.argv[2];
const [cert, key] = [process.env.BENCH_CERT ?? '', process.env.BENCH_KEY ?? ''];

/** ws frames: a kind byte; then messages, each a 2-byte length and its bytes, or for a
 *  request a 4-byte id the echo carries back. */
export const WS_BATCH = 0;
export const WS_REQUEST = 1;
export const WS_COUNT = 2;

if (system === 'quicwire') {
  const server = await QuicServer.listen({ cert, key, tcp: true, webTransport: { path: '/bench' } });
  // The page's sendBatch resolves once this handler had each of its messages.
  server.onMessage(() => {});
  server.onRequest((body) => body);
  console.log(`READY ${server.port}`);
} else if (system === 'ws') {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
  wss.on('connection', (socket) => {
    let messages = 0;
    socket.on('message', (data: Buffer) => {
      const kind = data[0];
      if (kind === WS_BATCH) {
        for (let at = 1; at + 2 <= data.length; at += 2 + data.readUInt16BE(at)) messages++;
      } else if (kind === WS_REQUEST) socket.send(data);
      else if (kind === WS_COUNT) socket.send(Uint32Array.of(messages));
    });
  });
  await new Promise((resolve) => wss.once('listening', resolve));
  console.log(`READY ${(wss.address() as { port: number }).port}`);
} else {
  throw new Error(`unknown system ${system}`);
}
