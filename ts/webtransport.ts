// The page's side of a client connection over the browser's WebTransport
// (`transport: 'webtransport'`): the browser runs QUIC, TLS and HTTP/3, and the wasm engine
// runs the quicwire session on the session's streams (crates/quicwire-engine/src/web.rs).
// This only moves bytes: it carries out the engine's commands (open a stream, write, end,
// reset, send a datagram, close) and reports what the browser did (a stream came, bytes
// came, a stream ended or was reset, the session closed).

import { concat } from './bytes.js';
import { QuicwireError } from './errors.js';
import { WebCommand } from './layout.js';

/** How a client reaches servers over WebTransport. */
export interface WebTransportClientOptions {
  /** The session's path on the server (its `webTransport.path`; default '/'). */
  path: string;
  /** SHA-256 hashes (hex) of certificates to trust without a CA, as `generateDevCert`
   *  returns (`serverCertificateHashes`: ECDSA, valid 14 days at most). */
  certificateHashes: string[];
}

/** What the engine is told of its sessions. */
export interface WebTransportInput {
  ready(conn: number, maxDatagram: number): void;
  incoming(conn: number, bidi: boolean): number;
  data(conn: number, stream: number, data: Uint8Array, fin: boolean): void;
  reset(conn: number, stream: number, code: number): void;
  stopped(conn: number, stream: number, code: number): void;
  datagram(conn: number, data: Uint8Array): void;
  closed(conn: number, reason: string): void;
}

/** One command as the engine hands it out: kind, connection, stream, number, payload. */
export type WebCommandEntry = [number, number, number, number, Uint8Array | string | undefined];

/** How long a stream the browser refused (the server's stream credit is used up) waits
 *  before it is asked for again. */
const STREAM_RETRY_MS = 5;

const NO_BYTES = new Uint8Array(0);

/** One stream of ours or the server's: its writer once the browser opened it, and the
 *  commands that came before. */
interface Stream {
  writer: WritableStreamDefaultWriter<Uint8Array> | undefined;
  writable: WritableStream<Uint8Array> | undefined;
  reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  waiting: WebCommandEntry[];
  /** Each side that it has is done: written to its end (or reset), read to its end. */
  writeDone: boolean;
  readDone: boolean;
  /** The engine reset it before the browser opened it: its code. */
  givenUp: number | undefined;
}

function newStream(writes: boolean, reads: boolean): Stream {
  return {
    writer: undefined,
    writable: undefined,
    reader: undefined,
    waiting: [],
    writeDone: !writes,
    readDone: !reads,
    givenUp: undefined,
  };
}

/** One connection's WebTransport session. */
class Session {
  readonly streams = new Map<number, Stream>();
  datagrams: WritableStreamDefaultWriter<Uint8Array> | undefined;
  closed = false;
  constructor(
    readonly conn: number,
    readonly wt: WebTransport,
  ) {}
}

function streamCode(err: unknown): number {
  const code = (err as { streamErrorCode?: unknown } | undefined)?.streamErrorCode;
  return typeof code === 'number' ? code : 0;
}

/** A hash as `serverCertificateHashes` takes it (checked by QuicTransport: 64 hex digits). */
function hexBytes(hex: string): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(32);
  for (let i = 0; i < 32; i++) bytes[i] = Number.parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return bytes;
}

/** An application error code on a stream, as the browser takes it. */
function streamError(code: number): unknown {
  if (typeof globalThis.WebTransportError !== 'function') return undefined;
  const message = `quicwire code ${code}`;
  try {
    return new WebTransportError(message, { streamErrorCode: code });
  } catch {
    // Chromium's constructor takes one dictionary, from before the spec settled.
    try {
      const Init = WebTransportError as unknown as new (init: object) => unknown;
      return new Init({ message, streamErrorCode: code });
    } catch {
      return undefined;
    }
  }
}

/** Commands that waited for their stream to open, its writes in a row joined into one: a
 *  request's head and body, a channel's number and first messages (each write crosses into
 *  the browser's network process). */
function coalesced(commands: WebCommandEntry[]): WebCommandEntry[] {
  const out: WebCommandEntry[] = [];
  let run: Uint8Array[] = [];
  const flush = (at: WebCommandEntry): void => {
    if (run.length === 0) return;
    out.push([WebCommand.Write, at[1], at[2], 0, run.length === 1 ? run[0] : concat(run)]);
    run = [];
  };
  for (const command of commands) {
    if (command[0] === WebCommand.Write) {
      run.push(command[4] as Uint8Array);
      continue;
    }
    flush(command);
    out.push(command);
  }
  const last = commands[commands.length - 1];
  if (last) flush(last);
  return out;
}

/** The sessions of one engine's connections. */
export class WebTransportSessions {
  readonly #sessions = new Map<number, Session>();
  readonly #hashes: WebTransportHash[];

  constructor(
    options: WebTransportClientOptions,
    readonly input: WebTransportInput,
  ) {
    if (typeof (globalThis as { WebTransport?: unknown }).WebTransport !== 'function') {
      throw new QuicwireError(
        'ERR_BACKEND_UNAVAILABLE',
        "transport: 'webtransport' needs the WebTransport API of a browser; this runtime has none",
      );
    }
    this.#hashes = options.certificateHashes.map((h) => ({ algorithm: 'sha-256', value: hexBytes(h) }));
  }

  /** Carries out the engine's commands, in order. */
  run(commands: WebCommandEntry[]): void {
    for (const command of commands) {
      try {
        this.#run(command);
      } catch (err) {
        // A browser that throws where none should: that session ends, and says why.
        const session = this.#sessions.get(command[1]);
        if (session) {
          session.wt.close({ closeCode: 0, reason: 'internal error' });
          this.#ended(session, `the browser threw: ${err instanceof Error ? err.message : String(err)}`);
        }
      }
    }
  }

  #run(command: WebCommandEntry): void {
    const [kind, conn] = command;
    if (kind === WebCommand.Connect) {
      this.#connect(conn, command[4] as string);
      return;
    }
    const session = this.#sessions.get(conn);
    if (!session || session.closed) return;
    switch (kind) {
      case WebCommand.Open:
        this.#open(session, command[2], command[3] === 1);
        break;
      case WebCommand.Datagram:
        session.datagrams ??= session.wt.datagrams.writable.getWriter();
        session.datagrams.write(command[4] as Uint8Array).catch(() => {});
        break;
      case WebCommand.Close:
        session.closed = true;
        session.wt.close({ closeCode: command[3], reason: String(command[4] ?? '') });
        this.#sessions.delete(conn);
        break;
      default:
        this.#onStream(session, command);
    }
  }

  /** Closes every session (the client is closing). */
  closeAll(): void {
    for (const session of this.#sessions.values()) {
      session.closed = true;
      session.wt.close({ closeCode: 0, reason: 'client closed' });
    }
    this.#sessions.clear();
  }

  #connect(conn: number, url: string): void {
    let wt: WebTransport;
    try {
      wt = new WebTransport(url, {
        ...(this.#hashes.length > 0 && { serverCertificateHashes: this.#hashes }),
      });
    } catch (err) {
      this.input.closed(conn, err instanceof Error ? err.message : String(err));
      return;
    }
    const session = new Session(conn, wt);
    this.#sessions.set(conn, session);
    wt.ready.then(
      () => {
        if (session.closed) return;
        this.input.ready(conn, wt.datagrams.maxDatagramSize ?? 0);
        this.#acceptStreams(session, wt.incomingUnidirectionalStreams, false);
        this.#acceptStreams(session, wt.incomingBidirectionalStreams, true);
        this.#readDatagrams(session);
      },
      () => {},
    );
    wt.closed.then(
      (info) => this.#ended(session, info.reason || `closed with code ${info.closeCode ?? 0}`),
      (err: unknown) => this.#ended(session, err instanceof Error ? err.message : String(err)),
    );
  }

  #ended(session: Session, reason: string): void {
    this.#sessions.delete(session.conn);
    session.closed = true;
    this.input.closed(session.conn, reason);
  }

  #open(session: Session, key: number, bidi: boolean): void {
    const stream = newStream(true, bidi);
    session.streams.set(key, stream);
    const attempt = (): void => {
      if (session.closed || stream.givenUp !== undefined) return;
      const opening = bidi ? session.wt.createBidirectionalStream() : session.wt.createUnidirectionalStream();
      opening.then(
        (opened) => {
          if (stream.givenUp !== undefined) {
            // Reset while the browser was opening it: the server learns so at once.
            const error = streamError(stream.givenUp);
            ('readable' in opened ? opened.writable : opened).abort(error).catch(() => {});
            if ('readable' in opened) opened.readable.cancel(error).catch(() => {});
          } else if ('readable' in opened) {
            this.#attach(session, key, stream, opened.writable);
            this.#read(session, key, stream, opened.readable);
          } else {
            this.#attach(session, key, stream, opened);
          }
        },
        // The server's stream credit is used up: the browser refuses rather than waits.
        () => setTimeout(attempt, STREAM_RETRY_MS),
      );
    };
    attempt();
  }

  #attach(session: Session, key: number, stream: Stream, writable: WritableStream<Uint8Array>): void {
    stream.writable = writable;
    stream.writer = writable.getWriter();
    stream.writer.closed.catch((err: unknown) => {
      if (!session.closed) this.input.stopped(session.conn, key, streamCode(err));
    });
    const waiting = coalesced(stream.waiting);
    stream.waiting = [];
    for (const command of waiting) this.#onStream(session, command);
  }

  #onStream(session: Session, command: WebCommandEntry): void {
    const [kind, , key, number, payload] = command;
    const stream = session.streams.get(key);
    if (!stream) return;
    if (kind === WebCommand.Stop && stream.reader) {
      stream.reader.cancel(streamError(number)).catch(() => {});
      return;
    }
    const writer = stream.writer;
    if (!writer) {
      if (kind === WebCommand.Reset) {
        // Given up before it opened (a request that timed out while the server's stream
        // credit was used up): what waited is dropped, and no more attempts are made.
        stream.givenUp = number;
        stream.waiting = [];
        session.streams.delete(key);
        return;
      }
      stream.waiting.push(command);
      return;
    }
    const quiet = (): void => {};
    const done = (): void => {
      stream.writeDone = true;
      this.#settle(session, key, stream);
    };
    switch (kind) {
      case WebCommand.Write:
        writer.write(payload as Uint8Array).catch(quiet);
        break;
      case WebCommand.Finish:
        writer.close().then(done, done);
        break;
      case WebCommand.Reset:
        writer.abort(streamError(number)).then(done, done);
        break;
      case WebCommand.Priority:
        if (stream.writable && 'sendOrder' in stream.writable) {
          (stream.writable as { sendOrder: number }).sendOrder = number;
        }
        break;
    }
  }

  async #acceptStreams(
    session: Session,
    incoming: ReadableStream<WebTransportBidirectionalStream> | ReadableStream<ReadableStream<Uint8Array>>,
    bidi: boolean,
  ): Promise<void> {
    const reader = incoming.getReader();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done || session.closed) return;
        const key = this.input.incoming(session.conn, bidi);
        if (key < 0) return;
        const stream = newStream(bidi, true);
        session.streams.set(key, stream);
        if ('readable' in value) {
          this.#attach(session, key, stream, value.writable);
          this.#read(session, key, stream, value.readable);
        } else {
          this.#read(session, key, stream, value);
        }
      }
    } catch {
      // The session closed; `closed` reports it.
    }
  }

  async #read(
    session: Session,
    key: number,
    stream: Stream,
    readable: ReadableStream<Uint8Array>,
  ): Promise<void> {
    const reader = readable.getReader();
    stream.reader = reader;
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (session.closed) return;
        if (done) {
          this.input.data(session.conn, key, NO_BYTES, true);
          break;
        }
        this.input.data(session.conn, key, value, false);
      }
    } catch (err) {
      if (!session.closed) this.input.reset(session.conn, key, streamCode(err));
    }
    stream.readDone = true;
    this.#settle(session, key, stream);
  }

  /** Forgets a stream once each of its sides is done. */
  #settle(session: Session, key: number, stream: Stream): void {
    if (stream.writeDone && stream.readDone && session.streams.get(key) === stream) {
      session.streams.delete(key);
    }
  }

  async #readDatagrams(session: Session): Promise<void> {
    const reader = session.wt.datagrams.readable.getReader();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done || session.closed) return;
        this.input.datagram(session.conn, value);
      }
    } catch {
      // The session closed.
    }
  }
}
