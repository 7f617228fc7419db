// ws: WebSocket over TLS 1.3 (wss), one binary WebSocket message per frame.
import { createServer } from 'node:https';
import WebSocket, { WebSocketServer } from 'ws';
import { FrameReader, FrameServer } from '../framing.js';
import { HOST, type Transport } from '../types.js';
import { frameClient } from './node-tls.js';

const HIGH = 4 << 20;

export const ws: Transport = {
  name: 'ws',
  describe: 'ws (WebSocket) over TLS 1.3, binary messages carrying the same frames',
  async listen(tls) {
    const https = createServer({ cert: tls.cert, key: tls.key, minVersion: 'TLSv1.3' });
    const wss = new WebSocketServer({ server: https, perMessageDeflate: false, maxPayload: 1 << 20 });
    wss.on('connection', (socket) => {
      const state = new FrameServer();
      const reader = new FrameReader();
      socket.on('message', (data: Buffer) =>
        reader.push(data, (k, id, p) => state.handle(k, id, p, (f) => socket.send(f))),
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
    const drain = async () => {
      while (socket.bufferedAmount > HIGH / 2) await new Promise((r) => setImmediate(r));
    };
    const { client, onFrame } = frameClient(
      (data) => {
        socket.send(data);
        return socket.bufferedAmount < HIGH;
      },
      drain,
      async () => socket.close(),
    );
    const reader = new FrameReader();
    socket.on('message', (data: Buffer) => reader.push(data, onFrame));
    return client;
  },
};
