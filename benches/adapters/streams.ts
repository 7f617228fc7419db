// What the QUIC peers share: each library's stream reduced to write/finish/read, and the
// benchmark protocol over such streams. Messages go on one long-lived stream, gathered into
// large writes with one write in flight (framing.ts: these libraries' writes are
// asynchronous and cost per call); each request on a fresh stream; bulk on its own stream,
// one framed chunk written over and over. The server answers and finishes the stream.
import {
  FrameReader,
  type FrameServer,
  FrameWriter,
  frame,
  Kind,
  type OnFrame,
  readU64,
} from '../framing.js';
import type { BenchClient } from '../types.js';

export interface ByteStream {
  write(data: Uint8Array): Promise<void>;
  /** Ends our side of the stream. */
  finish(): Promise<void>;
  /** The next chunk, or null once the stream has ended (or was reset). */
  read(): Promise<Uint8Array | null>;
}

/** Feeds a stream's frames to `onFrame` until the stream ends. */
export async function pump(stream: ByteStream, onFrame: OnFrame) {
  const reader = new FrameReader();
  for (let chunk = await stream.read(); chunk !== null; chunk = await stream.read())
    reader.push(chunk, onFrame);
}

/** One request: a fresh stream, the frame, finish, then the answer. */
async function ask(open: () => Promise<ByteStream>, kind: number, payload: Uint8Array): Promise<Uint8Array> {
  const stream = await open();
  await stream.write(frame(kind, 0, payload));
  await stream.finish();
  let answer: Uint8Array | undefined;
  await pump(stream, (_k, _id, b, start, end) => {
    answer = b.slice(start, end);
  });
  if (!answer) throw new Error('stream ended without an answer');
  return answer;
}

/** The server side of one stream: frames into the connection's state, answers finish it. */
export function serveStream(stream: ByteStream, state: FrameServer): void {
  const reply = (kind: number, id: number, payload: Uint8Array) => {
    void stream
      .write(frame(kind, id, payload))
      .then(() => stream.finish())
      .catch(() => {});
  };
  void pump(stream, (k, id, b, start, end) => state.handle(k, id, b, start, end, reply));
}

/** The client side over a library's streams. */
export async function streamClient(
  open: () => Promise<ByteStream>,
  close: () => Promise<void>,
): Promise<BenchClient> {
  const messages = await open();
  const writer = new FrameWriter((d) => messages.write(d));
  const client: BenchClient = {
    send: (payload) => writer.push(Kind.Message, 0, payload),
    flush: () => writer.flush(),
    request: (payload) => ask(open, Kind.Request, payload),
    async bulk(chunk, count, until) {
      const stream = await open();
      const framed = frame(Kind.Bulk, 0, chunk);
      let sent = 0;
      while (sent < count && performance.now() < until) {
        sent++;
        await stream.write(framed);
      }
      await stream.write(frame(Kind.BulkDone, 0, new Uint8Array(0)));
      await stream.finish();
      let total = 0;
      await pump(stream, (_k, _id, b, start) => {
        total = readU64(b.subarray(start));
      });
      if (total !== chunk.length * sent)
        throw new Error(`bulk: server counted ${total} of ${chunk.length * sent} bytes`);
      return sent;
    },
    async received() {
      await client.flush();
      return readU64(await ask(open, Kind.Count, new Uint8Array(0)));
    },
    close,
  };
  return client;
}
