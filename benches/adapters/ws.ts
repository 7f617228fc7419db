// ws: WebSocket over TLS 1.3 (wss). Frames are gathered as for node:tls (framing.ts), so one
// binary WebSocket message carries what a task wrote: ws's cost is per message, and this is
// how an application that sends many small messages uses it.
import { createServer } from 'node:https';
import WebSocket, { WebSocketServer } from 'ws';
import { FrameReader, FrameServer, FrameWriter } from '../framing.js';
import { HOST, type Transport } from '../types.js';
import { frameClient } from './node-tls.js';

const HIGH = 4 << 20;

/** A WebSocket as a FrameWriter sink: one binary message per write; past HIGH buffered
 *  bytes, wait until ws has written half of them. */
export function socketWriter(socket: WebSocket): FrameWriter {
  const drained = async () => {
    while (socket.bufferedAmount > HIGH / 2) await new Promise((r) => setImmediate(r));
  };
  return new FrameWriter((data) => {
    socket.send(data);
    return socket.bufferedAmount < HIGH ? undefined : drained();
  });
}

export const ws: Transport = {
  name: 'ws',
  describe: 'ws (WebSocket) over TLS 1.3, binary messages carrying the same frames',
  async listen(tls) {
    const https = createServer({ cert: tls.cert, key: tls.key, minVersion: 'TLSv1.3' });
    const wss = new WebSocketServer({ server: https, perMessageDeflate: false, maxPayload: 1 << 20 });
    wss.on('connection', (socket) => {
      const state = new FrameServer();
      const reader = new FrameReader();
      const writer = socketWriter(socket);
      const reply = (kind: number, id: number, payload: Uint8Array) => writer.push(kind, id, payload);
      socket.on('message', (data: Buffer) =>
        reader.push(data, (k, id, b, start, end) => state.handle(k, id, b, start, end, reply)),
      );
    });
    await new Promise<void>((r) => https.listen(0, HOST, r));
    const port = (https.address() as { port: number }).port;
    return {
      port,
      close: async () => {
        wss.close();
        await new Promise<void>((r) => https.close(() => r()));
      },
    };
  },
  async connect(port, tls) {
    const socket = new WebSocket(`wss://${HOST}:${port}/`, {
      ca: tls.cert,
      perMessageDeflate: false,
      maxPayload: 1 << 20,
    });
    await new Promise((resolve, reject) => {
      socket.once('open', resolve);
      socket.once('error', reject);
    });
    const { client, onFrame } = frameClient(socketWriter(socket), async () => socket.close());
    const reader = new FrameReader();
    socket.on('message', (data: Buffer) => reader.push(data, onFrame));
    return client;
  },
};
