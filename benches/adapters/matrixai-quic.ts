// @matrixai/quic: Cloudflare's quiche behind napi-rs, with web streams. Messages on one
// stream, a stream per request, bulk on its own stream.
import { webcrypto } from 'node:crypto';
import { events, QUICClient, type QUICConnection, QUICServer, type QUICStream } from '@matrixai/quic';
import { CoalescingWriter, FrameReader, FrameServer, frame, Kind, readU64 } from '../framing.js';
import type { BenchClient, Transport } from '../types.js';

const subtle = webcrypto.subtle;

// Retry tokens are signed with an HMAC key the server is given as raw bytes.
const serverCrypto = {
  key: webcrypto.getRandomValues(new Uint8Array(32)).buffer,
  ops: {
    async sign(key: ArrayBuffer, data: ArrayBuffer) {
      const k = await subtle.importKey('raw', key, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
      return subtle.sign('HMAC', k, data);
    },
    async verify(key: ArrayBuffer, data: ArrayBuffer, sig: ArrayBuffer) {
      const k = await subtle.importKey('raw', key, { name: 'HMAC', hash: 'SHA-256' }, false, ['verify']);
      return subtle.verify('HMAC', k, sig, data);
    },
  },
};
const clientCrypto = {
  ops: {
    async randomBytes(data: ArrayBuffer) {
      webcrypto.getRandomValues(new Uint8Array(data));
    },
  },
};

const limits = {
  initialMaxData: 15_000_000,
  initialMaxStreamDataBidiLocal: 10_000_000,
  initialMaxStreamDataBidiRemote: 10_000_000,
  initialMaxStreamDataUni: 10_000_000,
  initialMaxStreamsBidi: 1000,
  initialMaxStreamsUni: 100,
  maxIdleTimeout: 30_000,
};

async function pump(stream: QUICStream, onFrame: (kind: number, id: number, p: Uint8Array) => void) {
  const reader = new FrameReader();
  const r = stream.readable.getReader();
  try {
    for (;;) {
      const { value, done } = await r.read();
      if (done) return;
      reader.push(value, onFrame);
    }
  } catch {
    // reset by the peer: the stream is over
  }
}

async function ask(conn: QUICConnection, kind: number, payload: Uint8Array): Promise<Uint8Array> {
  const stream = conn.newStream('bidi');
  const w = stream.writable.getWriter();
  await w.write(frame(kind, 0, payload));
  await w.close();
  let answer: Uint8Array | undefined;
  await pump(stream, (_k, _id, p) => {
    answer = p;
  });
  if (!answer) throw new Error('stream ended without an answer');
  return answer;
}

export const matrixaiQuic: Transport = {
  name: 'matrixai-quic',
  describe: '@matrixai/quic (Cloudflare quiche via napi-rs), web streams',
  async listen(tls) {
    const server = new QUICServer({
      crypto: serverCrypto,
      config: { ...limits, key: tls.key, cert: tls.cert, verifyPeer: false },
    });
    server.addEventListener(events.EventQUICServerConnection.name, (evt) => {
      const conn = (evt as events.EventQUICServerConnection).detail;
      const state = new FrameServer();
      conn.addEventListener(events.EventQUICConnectionStream.name, (e) => {
        const stream = (e as events.EventQUICConnectionStream).detail;
        const writer = stream.writable.getWriter();
        void pump(stream, (k, id, p) =>
          state.handle(k, id, p, (f) => {
            void writer
              .write(f)
              .then(() => writer.close())
              .catch(() => {});
          }),
        ).then(() => writer.close().catch(() => {}));
      });
    });
    await server.start({ host: '127.0.0.1', port: 0 });
    return { port: server.port, close: () => server.stop({ force: true }) };
  },
  async connect(port, tls): Promise<BenchClient> {
    const client = await QUICClient.createQUICClient({
      host: '127.0.0.1',
      port,
      serverName: 'localhost',
      crypto: clientCrypto,
      config: { ...limits, verifyPeer: true, ca: tls.cert },
    });
    const conn = client.connection;
    const messages = conn.newStream('bidi').writable.getWriter();
    const writer = new CoalescingWriter((d) => messages.write(d));
    return {
      send: (payload) => writer.push(frame(Kind.Message, 0, payload)),
      flush: () => writer.flush(),
      request: (payload) => ask(conn, Kind.Request, payload),
      async bulk(chunk, count, until) {
        const stream = conn.newStream('bidi');
        const w = stream.writable.getWriter();
        const framed = frame(Kind.Bulk, 0, chunk);
        let sent = 0;
        while (sent < count && performance.now() < until) {
          sent++;
          await w.write(framed);
        }
        await w.write(frame(Kind.BulkDone, 0, new Uint8Array(0)));
        await w.close();
        let total = 0;
        await pump(stream, (_k, _id, p) => {
          total = readU64(p);
        });
        if (total !== chunk.length * sent)
          throw new Error(`bulk: server counted ${total} of ${chunk.length * sent} bytes`);
        return sent;
      },
      received: async () => {
        await writer.flush();
        return readU64(await ask(conn, Kind.Count, new Uint8Array(0)));
      },
      close: () => client.destroy({ force: true }),
    };
  },
};
