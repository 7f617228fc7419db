// @matrixai/quic: Cloudflare's quiche behind napi-rs, with web streams.
import { webcrypto } from 'node:crypto';
import { events, QUICClient, QUICServer, type QUICStream } from '@matrixai/quic';
import { FrameServer } from '../framing.js';
import { HOST, type Transport } from '../types.js';
import { type ByteStream, serveStream, streamClient } from './streams.js';

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

function byteStream(stream: QUICStream): ByteStream {
  const w = stream.writable.getWriter();
  const r = stream.readable.getReader();
  return {
    write: (data) => w.write(data),
    finish: () => w.close(),
    read: async () => {
      try {
        const { value, done } = await r.read();
        return done ? null : value;
      } catch {
        return null; // reset by the peer: the stream is over
      }
    },
  };
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
        serveStream(byteStream((e as events.EventQUICConnectionStream).detail), state);
      });
    });
    await server.start({ host: HOST, port: 0 });
    return { port: server.port, close: () => server.stop({ force: true }) };
  },
  async connect(port, tls) {
    const client = await QUICClient.createQUICClient({
      host: HOST,
      port,
      serverName: 'localhost',
      crypto: clientCrypto,
      config: { ...limits, verifyPeer: true, ca: tls.cert },
    });
    const conn = client.connection;
    return streamClient(
      async () => byteStream(conn.newStream('bidi')),
      () => client.destroy({ force: true }),
    );
  },
};
