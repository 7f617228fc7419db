// What the QUIC peers share: each library's stream reduced to write/finish/read, and the
// benchmark protocol over such streams. Messages go on one long-lived stream, each request
// on a fresh stream, bulk on its own stream; the server answers and finishes the stream.
import { CoalescingWriter, FrameReader, type FrameServer, frame, Kind, readU64 } from '../framing.js';
import type { BenchClient } from '../types.js';

export interface ByteStream {
  write(data: Uint8Array): Promise<void>;
  /** Ends our side of the stream. */
  finish(): Promise<void>;
  /** The next chunk, or null once the stream has ended (or was reset). */
  read(): Promise<Uint8Array | null>;
}

/** Feeds a stream's frames to `onFrame` until the stream ends. */
export async function pump(stream: ByteStream, onFrame: (kind: number, id: number, p: Uint8Array) => void) {
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
  await pump(stream, (_k, _id, p) => {
    answer = p;
  });
  if (!answer) throw new Error('stream ended without an answer');
  return answer;
}

/** The server side of one stream: frames into the connection's state, answers finish it. */
export function serveStream(stream: ByteStream, state: FrameServer): void {
  void pump(stream, (k, id, p) =>
    state.handle(k, id, p, (f) => {
      void stream
        .write(f)
        .then(() => stream.finish())
        .catch(() => {});
    }),
  );
}

/**
 * The client side over a library's streams. `coalesce`: frames written while a write is in
 * flight join the next write; without it, one awaited write per message, as a plain stream
 * sink does.
 */
export async function streamClient(
  open: () => Promise<ByteStream>,
  coalesce: boolean,
  close: () => Promise<void>,
): Promise<BenchClient> {
  const messages = await open();
  const writer = new CoalescingWriter((d) => messages.write(d));
  let last: Promise<void> = Promise.resolve();
  const client: BenchClient = {
    send(payload) {
      if (coalesce) return writer.push(frame(Kind.Message, 0, payload));
      last = messages.write(frame(Kind.Message, 0, payload));
      return last;
    },
    async flush() {
      await writer.flush();
      await last;
    },
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
      await pump(stream, (_k, _id, p) => {
        total = readU64(p);
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
