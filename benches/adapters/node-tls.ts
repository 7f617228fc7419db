// node:tls: TLS 1.3 over one TCP connection, length-prefixed frames, requests multiplexed by
// id. What a Node user would build without QUIC, written for speed: Nagle off, frames
// gathered into large writes with the socket's own backpressure (`write()` false, then
// `drain`), and a reader that walks each chunk in place (framing.ts).
import { once } from 'node:events';
import type { Socket } from 'node:net';
import { connect, createServer, type TLSSocket } from 'node:tls';
import { FrameReader, FrameServer, FrameWriter, Kind, readU64 } from '../framing.js';
import { type BenchClient, HOST, type Transport } from '../types.js';

/** Request/response by id over one ordered byte stream: the client, and what it does with
 *  the frames that come back. */
export function frameClient(
  writer: FrameWriter,
  close: () => Promise<void>,
): {
  client: BenchClient;
  onFrame: (kind: number, id: number, b: Uint8Array, start: number, end: number) => void;
} {
  const pending = new Map<number, (payload: Uint8Array) => void>();
  let nextId = 1;
  const ask = (kind: number, payload: Uint8Array) =>
    new Promise<Uint8Array>((resolve) => {
      const id = nextId++;
      pending.set(id, resolve);
      writer.push(kind, id, payload);
    });
  const client: BenchClient = {
    send: (payload) => writer.push(Kind.Message, 0, payload),
    flush: () => writer.flush(),
    request: (payload) => ask(Kind.Request, payload),
    async bulk(chunk, count, until) {
      let sent = 0;
      while (sent < count && performance.now() < until) {
        sent++;
        const wait = writer.push(Kind.Bulk, 0, chunk);
        if (wait) await wait;
      }
      const confirmed = readU64(await ask(Kind.BulkDone, new Uint8Array(0)));
      return confirmed / chunk.length;
    },
    received: async () => readU64(await ask(Kind.Count, new Uint8Array(0))),
    close,
  };
  const onFrame = (_kind: number, id: number, bytes: Uint8Array, start: number, end: number) => {
    const resolve = pending.get(id);
    pending.delete(id);
    resolve?.(bytes.slice(start, end));
  };
  return { client, onFrame };
}

/** A socket as a FrameWriter sink: written at once, waited on only when its buffer is full. */
function socketWriter(socket: Socket): FrameWriter {
  return new FrameWriter((data) => (socket.write(data) ? undefined : once(socket, 'drain').then(() => {})));
}

export const nodeTls: Transport = {
  name: 'node-tls',
  describe: 'node:tls, TLS 1.3 over TCP, length-prefixed frames multiplexed by request id',
  async listen(tls) {
    const server = createServer({ cert: tls.cert, key: tls.key, minVersion: 'TLSv1.3' }, (socket) => {
      socket.setNoDelay(true);
      const reader = new FrameReader();
      const writer = socketWriter(socket);
      const state = new FrameServer();
      const reply = (kind: number, id: number, payload: Uint8Array) => writer.push(kind, id, payload);
      socket.on('data', (chunk: Buffer) =>
        reader.push(chunk, (k, id, b, start, end) => state.handle(k, id, b, start, end, reply)),
      );
      socket.on('error', () => {});
    });
    await new Promise<void>((r) => server.listen(0, HOST, r));
    const port = (server.address() as { port: number }).port;
    return { port, close: () => new Promise<void>((r) => server.close(() => r())) };
  },
  async connect(port, tls) {
    const socket: TLSSocket = await new Promise((resolve, reject) => {
      const s = connect(
        { host: HOST, port, ca: tls.cert, servername: 'localhost', minVersion: 'TLSv1.3' },
        () => resolve(s),
      );
      s.once('error', reject);
    });
    socket.setNoDelay(true);
    const { client, onFrame } = frameClient(socketWriter(socket), async () => {
      socket.end();
      socket.destroy();
    });
    const reader = new FrameReader();
    socket.on('data', (chunk: Buffer) => reader.push(chunk, onFrame));
    return client;
  },
};
