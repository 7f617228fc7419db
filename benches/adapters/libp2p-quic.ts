// @chainsafe/libp2p-quic 1.1: quinn behind napi-rs, driven through its napi binding directly
// (no libp2p node). TLS 1.3 with libp2p's certificate scheme (the identity is an Ed25519 key;
// it cannot take our CA).
import { createRequire } from 'node:module';
import { generateKeyPair, privateKeyToProtobuf } from '@libp2p/crypto/keys';
import { FrameServer } from '../framing.js';
import { HOST, type Transport } from '../types.js';
import { type ByteStream, serveStream, streamClient } from './streams.js';

interface NapiStream {
  read(max: number): Promise<Uint8Array | null>;
  write(data: Uint8Array): Promise<void>;
  finishWrite(): Promise<void>;
}
interface NapiConnection {
  inboundStream(): Promise<NapiStream>;
  outboundStream(): Promise<NapiStream>;
  abort(): void;
}
interface Napi {
  QuinnConfig: new (config: object) => object;
  Server: new (
    config: object,
    ip: string,
    port: number,
  ) => { inboundConnection(): Promise<NapiConnection>; port(): number; abort(): void };
  Client: new (
    config: object,
    family: number,
  ) => { outboundConnection(ip: string, port: number): Promise<NapiConnection> };
}

// The package's loader (dist/src/napi.js) is not exported; load the binding it would load.
const platform = `${process.platform}-${process.arch}${process.platform === 'linux' ? '-gnu' : ''}`;
const napi = createRequire(import.meta.resolve('@chainsafe/libp2p-quic'))(
  `@chainsafe/libp2p-quic-${platform}`,
) as Napi;

async function config(): Promise<object> {
  const key = await generateKeyPair('Ed25519');
  return new napi.QuinnConfig({
    privateKeyProto: privateKeyToProtobuf(key),
    handshakeTimeout: 5_000,
    maxIdleTimeout: 30_000,
    keepAliveInterval: 5_000,
    maxConcurrentStreamLimit: 1000,
    maxStreamData: 10_000_000,
    maxConnectionData: 15_000_000,
    receiveBufferSize: 4_000_000,
    sendBufferSize: 4_000_000,
  });
}

const byteStream = (s: NapiStream): ByteStream => ({
  write: (data) => s.write(data),
  finish: () => s.finishWrite(),
  read: () => s.read(65_536).catch(() => null),
});

/** One napi Client (a quinn endpoint) per process, as libp2p's transport keeps one. */
let client: InstanceType<Napi['Client']> | undefined;

export const libp2pQuic: Transport = {
  name: 'libp2p-quic',
  describe: '@chainsafe/libp2p-quic 1.1 (quinn via napi-rs), its napi binding driven directly',
  async listen() {
    const server = new napi.Server(await config(), HOST, 0);
    void (async () => {
      for (;;) {
        const conn = await server.inboundConnection().catch(() => undefined);
        if (!conn) return;
        const state = new FrameServer();
        void (async () => {
          for (;;) {
            const stream = await conn.inboundStream().catch(() => undefined);
            if (!stream) return;
            serveStream(byteStream(stream), state);
          }
        })();
      }
    })();
    return { port: server.port(), close: async () => server.abort() };
  },
  async connect(port) {
    client ??= new napi.Client(await config(), 0);
    const conn = await client.outboundConnection(HOST, port);
    return streamClient(
      async () => byteStream(await conn.outboundStream()),
      async () => conn.abort(),
    );
  },
};
