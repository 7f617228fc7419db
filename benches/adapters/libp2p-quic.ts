// @chainsafe/libp2p-quic 1.1: quinn behind napi-rs, driven through its napi binding directly
// (no libp2p node). TLS 1.3 with libp2p's certificate scheme (the identity is an Ed25519 key;
// it cannot take our CA). Messages on one stream, a stream per request, bulk on its own stream.
import { createRequire } from 'node:module';
import { generateKeyPair, privateKeyToProtobuf } from '@libp2p/crypto/keys';
import { CoalescingWriter, FrameReader, FrameServer, frame, Kind, readU64 } from '../framing.js';
import type { BenchClient, Transport } from '../types.js';

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

// The package's own loader (dist/src/napi.js) is ESM without types; load the binding it loads.
const napi = createRequire(import.meta.resolve('@chainsafe/libp2p-quic'))(
  '@chainsafe/libp2p-quic-linux-x64-gnu',
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

const CHUNK = 65_536;

/** Reads frames from a stream until it ends. */
async function pump(stream: NapiStream, onFrame: (kind: number, id: number, p: Uint8Array) => void) {
  const reader = new FrameReader();
  for (;;) {
    const chunk = await stream.read(CHUNK).catch(() => null);
    if (chunk === null) return;
    reader.push(chunk, onFrame);
  }
}

/** One request: a fresh stream, the frame, finish, then read the answer. */
async function ask(conn: NapiConnection, kind: number, payload: Uint8Array): Promise<Uint8Array> {
  const stream = await conn.outboundStream();
  await stream.write(frame(kind, 0, payload));
  await stream.finishWrite();
  let answer: Uint8Array | undefined;
  await pump(stream, (_k, _id, p) => {
    answer = p;
  });
  if (!answer) throw new Error('stream ended without an answer');
  return answer;
}

let client: InstanceType<Napi['Client']> | undefined;

/** `coalesce`: frames written while a write is in flight join the next write. Without it,
 *  one awaited napi write per message, as a plain stream sink does. */
export const libp2pQuic = (coalesce: boolean): Transport => ({
  name: coalesce ? 'libp2p-quic coalesced' : 'libp2p-quic',
  describe: `@chainsafe/libp2p-quic 1.1 (quinn via napi-rs), its napi binding driven directly${coalesce ? ', writes coalesced' : ''}`,
  async listen() {
    const server = new napi.Server(await config(), '127.0.0.1', 0);
    let open = true;
    void (async () => {
      while (open) {
        const conn = await server.inboundConnection().catch(() => undefined);
        if (!conn) return;
        const state = new FrameServer();
        void (async () => {
          for (;;) {
            const stream = await conn.inboundStream().catch(() => undefined);
            if (!stream) return;
            void pump(stream, (k, id, p) =>
              state.handle(k, id, p, (f) => {
                void stream
                  .write(f)
                  .then(() => stream.finishWrite())
                  .catch(() => {});
              }),
            );
          }
        })();
      }
    })();
    return {
      port: server.port(),
      close: async () => {
        open = false;
        server.abort();
      },
    };
  },
  async connect(port): Promise<BenchClient> {
    // One napi Client (a quinn endpoint) per process, as libp2p's transport keeps one.
    client ??= new napi.Client(await config(), 0);
    const conn = await client.outboundConnection('127.0.0.1', port);
    const messages = await conn.outboundStream();
    const writer = new CoalescingWriter((d) => messages.write(d));
    let last: Promise<void> = Promise.resolve();
    return {
      send: (payload) => {
        if (coalesce) return writer.push(frame(Kind.Message, 0, payload));
        last = messages.write(frame(Kind.Message, 0, payload));
        return last;
      },
      flush: async () => {
        await writer.flush();
        await last;
      },
      request: (payload) => ask(conn, Kind.Request, payload),
      async bulk(chunk, count, until) {
        const stream = await conn.outboundStream();
        const framed = frame(Kind.Bulk, 0, chunk);
        let sent = 0;
        while (sent < count && performance.now() < until) {
          sent++;
          await stream.write(framed);
        }
        await stream.write(frame(Kind.BulkDone, 0, new Uint8Array(0)));
        await stream.finishWrite();
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
        await last;
        return readU64(await ask(conn, Kind.Count, new Uint8Array(0)));
      },
      close: async () => conn.abort(),
    };
  },
});
