// node:tls: TLS 1.3 over one TCP connection, length-prefixed frames, requests multiplexed by
// id. What a Node user would build without QUIC.
import { connect, createServer, type TLSSocket } from 'node:tls';
import { FrameReader, FrameServer, frame, Kind, readU64 } from '../framing.js';
import { type BenchClient, HOST, type Transport } from '../types.js';

/** Request/response by id over one ordered byte stream, with write backpressure. */
export function frameClient(
  write: (data: Uint8Array) => boolean,
  drain: () => Promise<void>,
  close: () => Promise<void>,
): { client: BenchClient; onFrame: (kind: number, id: number, payload: Uint8Array) => void } {
  const pending = new Map<number, (payload: Uint8Array) => void>();
  let nextId = 1;
  const ask = (kind: number, payload: Uint8Array) =>
    new Promise<Uint8Array>((resolve) => {
      const id = nextId++;
      pending.set(id, resolve);
      write(frame(kind, id, payload));
    });
  const client: BenchClient = {
    send: (payload) => (write(frame(Kind.Message, 0, payload)) ? undefined : drain()),
    flush: async () => {},
    request: (payload) => ask(Kind.Request, payload),
    async bulk(chunk, count, until) {
      const framed = frame(Kind.Bulk, 0, chunk);
      let sent = 0;
      while (sent < count && performance.now() < until) {
        sent++;
        if (!write(framed)) await drain();
      }
      const confirmed = readU64(await ask(Kind.BulkDone, new Uint8Array(0)));
      return confirmed / chunk.length;
    },
    received: async () => readU64(await ask(Kind.Count, new Uint8Array(0))),
    close,
  };
  const onFrame = (_kind: number, id: number, payload: Uint8Array) => {
    const resolve = pending.get(id);
    pending.delete(id);
    resolve?.(payload);
  };
  return { client, onFrame };
}

export const nodeTls: Transport = {
  name: 'node-tls',
  describe: 'node:tls, TLS 1.3 over TCP, length-prefixed frames multiplexed by request id',
  async listen(tls) {
    const server = createServer({ cert: tls.cert, key: tls.key, minVersion: 'TLSv1.3' }, (socket) => {
      socket.setNoDelay(true);
      const reader = new FrameReader();
      const state = new FrameServer();
      socket.on('data', (chunk) =>
        reader.push(chunk, (k, id, p) => state.handle(k, id, p, (f) => socket.write(f))),
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
    const { client, onFrame } = frameClient(
      (data) => socket.write(data),
      () => new Promise((r) => socket.once('drain', r)),
      async () => {
        socket.end();
        socket.destroy();
      },
    );
    const reader = new FrameReader();
    socket.on('data', (chunk) => reader.push(chunk, onFrame));
    return client;
  },
};
