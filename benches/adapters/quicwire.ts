// quicwire itself, with the raw-bytes encoding: messages on the connection's channel stream,
// each request on its own stream, bulk as 64 KiB messages (send resolves on delivery).
// The built package (dist/), as users run it: not the TypeScript sources through tsx.
// The msgpack (the default encoding) and json rows send the same payloads encoded: msgpack
// carries bytes as a bin, JSON has none, so they travel as base64 strings, as a JSON
// application sends them.
import {
  allocSendBuffer,
  type CongestionControl,
  initWasm,
  QuicServer,
  QuicTransport,
} from '../../dist/index.js';
import { readU64, u64 } from '../framing.js';
import { type BenchClient, HOST, type Transport } from '../types.js';

/** A one-byte request body asks the server for its counters. */
const COUNT = Uint8Array.of(0xc0);

type Encoding = 'raw' | 'msgpack' | 'json';

/** Payload bytes to the value sent in `encoding`, and back. */
function codec(encoding: Encoding): { wrap(b: Uint8Array): unknown; unwrap(v: unknown): Uint8Array } {
  if (encoding !== 'json') return { wrap: (b) => b, unwrap: (v) => v as Uint8Array };
  return {
    wrap: (b) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64'),
    unwrap: (v) => Buffer.from(v as string, 'base64'),
  };
}

/** A variant of the default setup: another encoding, or another congestion controller on both sides. */
export interface Variant {
  encoding?: Encoding;
  congestionControl?: CongestionControl;
}

export function quicwire(backend: 'native' | 'wasm', variant: Variant = {}): Transport {
  const { encoding = 'raw', congestionControl } = variant;
  const { wrap, unwrap } = codec(encoding);
  const json = encoding === 'json';
  // An application keeps one QuicTransport; its pool holds one connection per host:port, so
  // a second live connection to the same server (the memory scenario) needs its own.
  let shared: QuicTransport | undefined;
  let sharedBusy = false;
  const suffix = `${encoding === 'raw' ? '' : ` ${encoding}`}${congestionControl ? ` ${congestionControl}` : ''}`;
  const cc = congestionControl ? `, ${congestionControl} congestion control` : '';
  return {
    name: `quicwire-${backend}${suffix}`,
    describe: `quicwire ${backend} engine (quinn${backend === 'wasm' ? '-proto in WebAssembly' : ' via napi-rs'}), ${encoding} bodies${encoding === 'msgpack' ? ' (the default encoding)' : ''}${cc}`,
    async listen(tls) {
      await initWasm(undefined, { backend });
      const server = await QuicServer.listen({
        host: HOST,
        port: 0,
        cert: tls.cert,
        key: tls.key,
        maxMessageSize: 1 << 20,
        maxConcurrentStreams: 1000,
        ...(congestionControl && { congestionControl }),
      });
      let messages = 0;
      // Counted, not kept: the handler borrows the bytes (no allocation per message).
      server.onMessage(
        () => {
          messages++;
        },
        { borrow: true },
      );
      server.onRequest((body) => {
        const b = unwrap(body);
        return b.length === 1 && b[0] === 0xc0 ? wrap(u64(messages)) : body;
      });
      return { port: server.port, close: () => server.close({ graceful: false }) };
    },
    async connect(port, tls): Promise<BenchClient> {
      await initWasm(undefined, { backend });
      const options = {
        ca: tls.cert,
        encoding,
        maxMessageSize: 1 << 20,
        ...(congestionControl && { congestionControl }),
      };
      const own = sharedBusy;
      shared ??= new QuicTransport(options);
      const t = own ? new QuicTransport(options) : shared;
      sharedBusy ||= !own;
      const conn = await t.connect(HOST, port);
      // Messages sent in the same tick go out as one sendBatch (one promise, resolved on
      // delivery of all), at most BATCH to one: a batch frees its share of the window as it
      // is delivered, so the window never drains empty before the sender may go on. A window
      // of undelivered messages bounds memory.
      const WINDOW = 65_536;
      const BATCH = 4096;
      let batch: Uint8Array[] = [];
      let inFlight = 0;
      let wake: (() => void) | undefined;
      const settled = (n: number) => () => {
        inFlight -= n;
        if (wake && inFlight < WINDOW / 2) {
          wake();
          wake = undefined;
        }
      };
      const ship = () => {
        if (batch.length === 0) return;
        const messages = batch;
        batch = [];
        conn
          .sendBatch(json ? messages.map(wrap) : messages)
          .then(settled(messages.length), settled(messages.length));
      };
      return {
        send(payload) {
          if (batch.length === 0) setImmediate(ship);
          batch.push(payload);
          if (batch.length === BATCH) ship();
          inFlight++;
          if (inFlight < WINDOW) return undefined;
          return new Promise<void>((r) => {
            wake = r;
          });
        },
        async flush() {
          while (inFlight > 0) {
            await new Promise<void>((r) => {
              wake = r;
            });
          }
        },
        // raw and msgpack as an application calls it: no wrapping function on the path.
        request: json
          ? async (payload) => unwrap(await conn.request(wrap(payload)))
          : (payload) => conn.request(payload) as Promise<Uint8Array>,
        async bulk(chunk, count, until) {
          // Messages on one ordered stream; each send resolves once that chunk was delivered.
          // Raw chunks go from a send buffer, which quicwire sends without copying (as
          // node:tls writes one buffer over and over, and the quinn ceiling sends one Bytes).
          let body: unknown;
          if (encoding === 'raw') {
            const buffer = allocSendBuffer(chunk.length);
            buffer.set(chunk);
            body = buffer;
          } else {
            body = wrap(chunk);
          }
          const pending: Promise<void>[] = [];
          let sent = 0;
          while (sent < count && performance.now() < until) {
            pending.push(conn.send(body));
            sent++;
            if (pending.length >= 128) await pending.shift();
          }
          await Promise.all(pending);
          return sent;
        },
        received: async () => readU64(unwrap(await conn.request(wrap(COUNT)))),
        async close() {
          if (own) return t.close();
          // A new connection next time, on the same endpoint (as in an application).
          await t.disconnect(conn);
          sharedBusy = false;
        },
      };
    },
  };
}
