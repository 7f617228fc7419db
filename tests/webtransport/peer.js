// A quicwire peer over the browser's own WebTransport, written for the tests from
// docs/PROTOCOL.md (section 9): an implementation independent of the engine, which a
// quicwire server must talk to. It offers the JSON encoding and speaks protocol version 2.
//
//   const peer = await Peer.open('https://127.0.0.1:4433/quicwire', hash);
//   await peer.send([{ n: 1 }]); const answer = await peer.request({ op: 'count' });

const HELLO = 1;
const MESSAGE = 3;
const REQUEST = 4;
const RESPONSE = 5;
const ERROR = 6;
const ACK = 7;
const GOAWAY = 8;
const JSON_ENCODING = 2;
const VERSION = 2;
// The server's error codes, by their wire numbers (docs/PROTOCOL.md, section 7).
const CODES = [
  'ERR_INTERNAL',
  'ERR_INVALID_ARGUMENT',
  'ERR_CONNECT_TIMEOUT',
  'ERR_TLS',
  'ERR_CONNECTION_CLOSED',
  'ERR_STREAM_RESET',
  'ERR_MESSAGE_TOO_LARGE',
  'ERR_DECODE',
  'ERR_ENCODE',
  'ERR_TIMEOUT',
  'ERR_FLOW_CONTROL_PAUSED',
  'ERR_POOL_EXHAUSTED',
  'ERR_NOT_INITIALIZED',
  'ERR_BACKEND_UNAVAILABLE',
  'ERR_REMOTE',
  'ERR_PROTOCOL',
  'ERR_NEGOTIATION',
  'ERR_IO',
  'ERR_NO_RESPONDERS',
  'ERR_NAME_TAKEN',
  'ERR_ABORTED',
];

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function varint(v) {
  if (v < 0x40) return [v];
  if (v < 0x4000) return [0x40 | (v >> 8), v & 0xff];
  if (v < 0x40000000) return [0x80 | (v >>> 24), (v >> 16) & 0xff, (v >> 8) & 0xff, v & 0xff];
  throw new Error(`varint ${v} too large for this peer`);
}

function concat(parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** One frame: varint length (kind, id, body), kind, [varint id], body. */
function frame(kind, id, body) {
  const idBytes = id === null ? [] : varint(id);
  const head = [...varint(1 + idBytes.length + body.length), kind, ...idBytes];
  return concat([Uint8Array.from(head), body]);
}

const json = (value) => encoder.encode(JSON.stringify(value));

/** Reads a stream's bytes and cuts them into varints and frames. */
class Reader {
  #reader;
  #buf = new Uint8Array(0);
  #done = false;
  constructor(stream) {
    this.#reader = stream.getReader();
  }
  async #fill(n) {
    while (this.#buf.length < n) {
      if (this.#done) return false;
      const { value, done } = await this.#reader.read();
      if (done) this.#done = true;
      else this.#buf = this.#buf.length ? concat([this.#buf, value]) : value;
    }
    return true;
  }
  /** The next varint, or null at the stream's end. */
  async varint() {
    if (!(await this.#fill(1))) return null;
    const len = 1 << (this.#buf[0] >> 6);
    if (!(await this.#fill(len))) throw new Error('stream ended inside a varint');
    let v = this.#buf[0] & 0x3f;
    for (let i = 1; i < len; i++) v = v * 256 + this.#buf[i];
    this.#buf = this.#buf.subarray(len);
    return v;
  }
  /** The next frame as { kind, id, body }, or null at the stream's end. */
  async frame() {
    const len = await this.varint();
    if (len === null) return null;
    if (!(await this.#fill(len))) throw new Error('stream ended inside a frame');
    const bytes = this.#buf.subarray(0, len);
    this.#buf = this.#buf.subarray(len);
    const kind = bytes[0];
    let body = bytes.subarray(1);
    let id = null;
    if (kind === REQUEST || kind === RESPONSE || kind === ERROR) {
      const r = new Reader(new Blob([body]).stream());
      id = await r.varint();
      body = body.subarray(varint(id).length);
    }
    return { kind, id, body };
  }
}

/** Reads varints from the front of `bytes`. */
function varints(bytes, count) {
  const out = [];
  let at = 0;
  for (let i = 0; i < count; i++) {
    const len = 1 << (bytes[at] >> 6);
    let v = bytes[at] & 0x3f;
    for (let j = 1; j < len; j++) v = v * 256 + bytes[at + j];
    out.push(v);
    at += len;
  }
  return { values: out, rest: bytes.subarray(at) };
}

export class Peer {
  /** Messages the server pushed, decoded, in order of arrival. */
  received = [];
  /** Datagrams from the server, decoded. */
  datagrams = [];
  #datagramSeq = 0;
  #datagramWriter;
  /** The server's HELLO: { version, maxMessageSize, encodings }. */
  hello;
  #wt;
  get wt() {
    return this.#wt;
  }
  #control;
  #channel;
  #sent = 0;
  #acked = 0;
  #ackWaiters = [];
  #nextId = 1;
  #onRequest = (body) => body;
  #helloSeen;

  static async open(url, hashHex, { maxMessageSize = 16 << 20 } = {}) {
    const value = Uint8Array.from(hashHex.match(/../g).map((h) => Number.parseInt(h, 16)));
    const wt = new WebTransport(url, { serverCertificateHashes: [{ algorithm: 'sha-256', value }] });
    await wt.ready;
    const peer = new Peer(wt);
    await peer.#start(maxMessageSize);
    return peer;
  }

  constructor(wt) {
    this.#wt = wt;
    this.closed = wt.closed.then(
      (info) => ({ closeCode: info.closeCode, reason: info.reason }),
      (err) => ({ error: String(err) }),
    );
  }

  async #start(maxMessageSize) {
    const stream = await this.#wt.createUnidirectionalStream();
    this.#control = stream.getWriter();
    const hello = concat([
      Uint8Array.from([...varint(VERSION), ...varint(maxMessageSize), 1, JSON_ENCODING]),
    ]);
    // Channel number 0: our control stream, its HELLO first.
    void this.#control.write(concat([Uint8Array.from(varint(0)), frame(HELLO, null, hello)]));
    this.#helloSeen = new Promise((resolve) => {
      this.#resolveHello = resolve;
    });
    void this.#acceptUni();
    void this.#acceptBi();
    void this.#readDatagrams();
    this.hello = await this.#helloSeen;
  }
  #resolveHello;

  async #readDatagrams() {
    const reader = this.#wt.datagrams.readable.getReader();
    for (;;) {
      const { value, done } = await reader.read().catch(() => ({ done: true }));
      if (done) return;
      // Each starts with its sequence number (the browser took the session's prefix off).
      this.datagrams.push(JSON.parse(decoder.decode(varints(value, 1).rest)));
    }
  }

  /** Sends a datagram, numbered as quicwire numbers them. */
  async sendDatagram(value) {
    const d = this.#wt.datagrams;
    this.#datagramWriter ??= (d.createWritable ? d.createWritable() : d.writable).getWriter();
    await this.#datagramWriter.write(concat([Uint8Array.from(varint(this.#datagramSeq++)), json(value)]));
  }

  /** Answers the server's requests with `handler(body)` (default: echo). */
  onRequest(handler) {
    this.#onRequest = handler;
  }

  async #acceptUni() {
    const streams = this.#wt.incomingUnidirectionalStreams.getReader();
    for (;;) {
      const { value, done } = await streams.read().catch(() => ({ done: true }));
      if (done) return;
      void this.#readUni(new Reader(value)).catch(() => {});
    }
  }

  async #readUni(reader) {
    const number = await reader.varint();
    let delivered = 0;
    for (;;) {
      const f = await reader.frame();
      if (f === null) return;
      if (number === 0) this.#onControl(f);
      else if (f.kind === MESSAGE) {
        this.received.push(JSON.parse(decoder.decode(f.body)));
        delivered++;
        void this.#control.write(
          frame(ACK, null, Uint8Array.from([...varint(number), ...varint(delivered)])),
        );
      }
    }
  }

  #onControl(f) {
    if (f.kind === HELLO) {
      const { values, rest } = varints(f.body, 2);
      const encodings = [...rest.subarray(1, 1 + rest[0])];
      this.#resolveHello({ version: values[0], maxMessageSize: values[1], encodings });
    } else if (f.kind === ACK) {
      const [stream, count] = varints(f.body, 2).values;
      if (stream === 1 && count > this.#acked) {
        this.#acked = count;
        this.#ackWaiters = this.#ackWaiters.filter(([n, resolve]) => (n <= count ? resolve() : true));
      }
    } else if (f.kind === GOAWAY) {
      this.goaway = true;
    }
  }

  async #acceptBi() {
    const streams = this.#wt.incomingBidirectionalStreams.getReader();
    for (;;) {
      const { value, done } = await streams.read().catch(() => ({ done: true }));
      if (done) return;
      void this.#answer(value).catch(() => {});
    }
  }

  async #answer(stream) {
    const f = await new Reader(stream.readable).frame();
    const answer = await this.#onRequest(JSON.parse(decoder.decode(f.body)));
    const writer = stream.writable.getWriter();
    await writer.write(frame(RESPONSE, f.id, json(answer)));
    await writer.close();
  }

  /** Sends messages on channel 1; resolves once the server's ACK says its application has them. */
  async send(values) {
    if (!this.#channel) {
      this.#channel = (await this.#wt.createUnidirectionalStream()).getWriter();
      void this.#channel.write(Uint8Array.from(varint(1)));
    }
    void this.#channel.write(concat(values.map((v) => frame(MESSAGE, null, json(v)))));
    this.#sent += values.length;
    const target = this.#sent;
    if (this.#acked >= target) return;
    await new Promise((resolve) => this.#ackWaiters.push([target, resolve]));
  }

  /** One request on a stream of its own: the answer, or throws { code, message }. */
  async request(value, { raw } = {}) {
    const stream = await this.#openBidi();
    const writer = stream.writable.getWriter();
    const id = this.#nextId++;
    void writer.write(frame(REQUEST, id, raw ?? json(value)));
    void writer.close();
    const f = await new Reader(stream.readable).frame();
    if (f === null)
      throw Object.assign(new Error('stream ended without an answer'), { code: 'ERR_STREAM_RESET' });
    if (f.kind === ERROR) {
      const { values, rest } = varints(f.body, 1);
      throw Object.assign(new Error(decoder.decode(rest)), { code: CODES[values[0]] ?? 'ERR_REMOTE' });
    }
    return raw ? f.body : JSON.parse(decoder.decode(f.body));
  }

  /** A new bidirectional stream. Chromium fails the call while the server's stream credit
   *  is used up, rather than waiting for more: try again shortly, as a client waits. */
  async #openBidi() {
    for (let tries = 0; ; tries++) {
      try {
        return await this.#wt.createBidirectionalStream();
      } catch (err) {
        if (tries >= 500) throw err;
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    }
  }

  close() {
    this.#wt.close({ closeCode: 0, reason: 'done' });
  }
}
