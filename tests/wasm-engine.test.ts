// The QUIC engine compiled to WebAssembly (pkg/, built by wasm-pack-build.sh): two engines
// complete real TLS 1.3 handshakes with datagrams handed over in memory. The addresses are
// labels only; nothing touches the network.

import { createSocket } from 'node:dgram';
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import init, { Engine, generateDevCert } from '../pkg/quicwire_wasm.js';
import { QuicServer } from '../ts/index.js';
import { ERROR_CODES } from '../ts/layout.js';
import { sleep } from './helpers.js';

// The engine reads no clock: these tests give it virtual time, which moves a millisecond a
// round (the UDP test below gives it the real one).
let now = 0;

const CLIENT = '127.0.0.1:50001';
const SERVER = '127.0.0.1:50002';
const CONNECTION = 1;
const CLOSED = 7;

await init({ module_or_path: await readFile(new URL('../pkg/quicwire_wasm_bg.wasm', import.meta.url)) });

interface Seen {
  client: number[][];
  server: number[][];
  clientText: string;
  serverText: string;
}

/** The engine's events; `text` is every body and text they carry, concatenated. */
function events(engine: Engine): { list: number[][]; text: string; bodies: Uint8Array[] } {
  const flat = engine.takeEvents() ?? new Float64Array(0);
  // Small bytes follow the words in their buffer; large ones are asked for.
  const end = flat.byteOffset + flat.byteLength;
  const data = flat.buffer.byteLength > end ? new Uint8Array(flat.buffer, end) : engine.takeEventData();
  const large = engine.takeEventBodies();
  const list: number[][] = [];
  const bodies: Uint8Array[] = [];
  for (let i = 0; i < flat.length; i += 7) {
    const e = Array.from(flat.subarray(i, i + 7));
    const [offset, length] = [e[5] as number, e[6] as number];
    list.push(e);
    bodies.push(offset < 0 ? (large[-offset - 1] as Uint8Array) : data.subarray(offset, offset + length));
  }
  return { list, text: new TextDecoder().decode(data), bodies };
}

const MESSAGE = 2;
const REQUEST = 3;
const RESPONSE = 4;
const REQUEST_FAILED = 5;
const ACKED = 6;
const RECEIPT = 8;
const utf8 = new TextEncoder();
const text = new TextDecoder();

/** Encodes ops for `write`: [op, target, id, body, extra] each (priority 0). */
function ops(list: [number, number, number, string, number][]): [Uint8Array, Float64Array] {
  const bodies = list.map((o) => utf8.encode(o[3]));
  const data = new Uint8Array(bodies.reduce((n, b) => n + b.length, 0));
  let offset = 0;
  for (const b of bodies) {
    data.set(b, offset);
    offset += b.length;
  }
  const words = list.flatMap((o, i) => [o[0], o[1], o[2], (bodies[i] as Uint8Array).length, o[4], 0]);
  return [data, Float64Array.from(words)];
}

/** A connected client/server pair with their connection ids. */
function connectedPair() {
  const server = Engine.server(now, cert.cert, cert.key, [], NO_LIMITS, NO_LIMITS);
  const client = Engine.client(now, cert.cert, false, ['json'], NO_LIMITS);
  const id = client.connect(now, 'localhost', 50002, SERVER, 0);
  const seen = pump(client, server);
  const serverId = seen.server.find((e) => e[0] === CONNECTION)?.[1] as number;
  return { server, client, id, serverId };
}

/** Moves what `from` (at `fromAddr`) transmits into `to`, its only destination; returns how many datagrams. */
function deliver(from: Engine, fromAddr: string, to: Engine, toAddr: string): number {
  const t = from.transmits(now);
  for (const addr of t.addrs) expect(addr).toBe(toAddr);
  if (t.lens.length > 0)
    to.receive(
      now,
      t.data,
      t.lens,
      t.addrs.map(() => fromAddr),
    );
  return t.lens.length;
}

/** Passes datagrams between the engines until both are quiet; every event with its body.
 *  Received messages are acknowledged as the facade does, unless `acknowledge` is false. */
function exchange(client: Engine, server: Engine, acknowledge = true) {
  const got = { client: [] as [number[], string][], server: [] as [number[], string][] };
  for (let round = 0; round < 100; round++) {
    now += 1;
    const moved = deliver(client, CLIENT, server, SERVER) + deliver(server, SERVER, client, CLIENT);
    for (const [side, engine] of [
      ['client', client],
      ['server', server],
    ] as const) {
      const e = events(engine);
      e.list.forEach((ev, i) => {
        got[side].push([ev, text.decode(e.bodies[i])]);
      });
      const receipts = e.list.filter((ev) => ev[0] === RECEIPT).flatMap((ev) => ev.slice(1, 4));
      if (acknowledge && receipts.length > 0) engine.acknowledge(now, Float64Array.from(receipts));
    }
    if (moved === 0) break;
  }
  return got;
}

const cert = generateDevCert(['localhost', '127.0.0.1']);
const NO_LIMITS = new Float64Array(0);

/** The same exchange, as event lists and concatenated texts per side. */
function pump(client: Engine, server: Engine): Seen {
  const got = exchange(client, server);
  return {
    client: got.client.map(([e]) => e),
    server: got.server.map(([e]) => e),
    clientText: got.client.map(([, b]) => b).join(''),
    serverText: got.server.map(([, b]) => b).join(''),
  };
}

describe('wasm engine (quinn-proto in WebAssembly)', () => {
  it('completes a verified TLS 1.3 handshake', () => {
    const server = Engine.server(now, cert.cert, cert.key, [], NO_LIMITS, NO_LIMITS);
    const client = Engine.client(now, cert.cert, false, [], NO_LIMITS);
    const id = client.connect(now, 'localhost', 50002, SERVER, 0);
    const seen = pump(client, server);
    // CONNECTION comes once TLS is done and both HELLOs agreed on an encoding.
    const connected = seen.client.find((e) => e[0] === CONNECTION && e[1] === id);
    expect(connected?.[4], "the server's maxMessageSize").toBe(1 << 20);
    expect(seen.clientText).toBe('msgpack localhost:50002 udp');
    expect(seen.server.some((e) => e[0] === CONNECTION)).toBe(true);
    expect(seen.serverText).toBe(`msgpack ${CLIENT} udp`);
    expect(client.connectionCount()).toBe(1);
    expect(server.connectionCount()).toBe(1);
  });

  it('runs its timers on the time it is given: keep-alives hold a quiet connection, silence ends it', () => {
    // An hour of pool idle timeout, so only QUIC's own timers are at work here.
    const limits = Float64Array.from([Number.NaN, Number.NaN, 3_600_000]);
    const server = Engine.server(now, cert.cert, cert.key, [], limits, NO_LIMITS);
    const client = Engine.client(now, cert.cert, false, [], limits);
    client.connect(now, 'localhost', 50002, SERVER, 0);
    pump(client, server);
    /** Runs both engines' timers for `ms` of virtual time; `talk`: datagrams go through. */
    const runFor = (ms: number, talk: boolean) => {
      const end = now + ms;
      const closed: number[][] = [];
      for (let i = 0; i < 10_000 && now < end; i++) {
        const due = [client.nextDeadlineMs(), server.nextDeadlineMs()].filter((t) => t >= 0);
        now = Math.min(end, Math.max(now, ...(due.length > 0 ? [Math.min(...due)] : [end])));
        for (const engine of [client, server]) {
          const t = engine.nextDeadlineMs();
          if (t >= 0 && t <= now) engine.onTimeout(now);
        }
        if (talk) {
          exchange(client, server);
        } else {
          // Silence: whatever either sends is lost.
          client.transmits(now);
          server.transmits(now);
        }
        closed.push(...events(client).list.filter((e) => e[0] === CLOSED));
      }
      return closed;
    };
    expect(runFor(60_000, true), 'a minute of keep-alives: still open').toEqual([]);
    expect(client.connectionCount()).toBe(1);
    // The server falls silent: within three keep-alive intervals (15 s) the client gives up.
    const started = now;
    const closed = runFor(20_000, false);
    expect(ERROR_CODES[closed[0]?.[3] as number]).toBe('ERR_CONNECTION_CLOSED');
    expect(now - started).toBeGreaterThanOrEqual(15_000);
  });

  it('is ready after one round trip: the server HELLO comes with its TLS flight', () => {
    const server = Engine.server(now, cert.cert, cert.key, [], NO_LIMITS, NO_LIMITS);
    const client = Engine.client(now, cert.cert, false, ['raw'], NO_LIMITS);
    client.connect(now, 'localhost', 50002, SERVER, 0);
    deliver(client, CLIENT, server, SERVER); // ClientHello
    expect(events(server).list.some((e) => e[0] === CONNECTION)).toBe(false);
    deliver(server, SERVER, client, CLIENT); // TLS flight, with the server's HELLO as 0.5-RTT data
    const ready = events(client);
    expect(ready.list.some((e) => e[0] === CONNECTION)).toBe(true);
    expect(ready.text).toBe('raw localhost:50002 udp');
    deliver(client, CLIENT, server, SERVER); // Finished and the client's HELLO, together
    expect(events(server).list.some((e) => e[0] === CONNECTION)).toBe(true);
  });

  it('rejects an untrusted certificate with ERR_TLS', () => {
    const other = generateDevCert(['localhost']);
    const server = Engine.server(now, cert.cert, cert.key, [], NO_LIMITS, NO_LIMITS);
    const client = Engine.client(now, other.cert, false, [], NO_LIMITS);
    client.connect(now, 'localhost', 50002, SERVER, 0);
    const seen = pump(client, server);
    const closed = seen.client.find((e) => e[0] === CLOSED);
    expect(closed, 'the client saw its handshake fail').toBeDefined();
    expect(ERROR_CODES[closed?.[3] as number]).toBe('ERR_TLS');
    expect(seen.clientText).toMatch(/certificate|UnknownIssuer/i);
    expect(seen.client.some((e) => e[0] === CONNECTION)).toBe(false);
  });

  it('rejects a certificate for another name with ERR_TLS', () => {
    const server = Engine.server(now, cert.cert, cert.key, [], NO_LIMITS, NO_LIMITS);
    const client = Engine.client(now, cert.cert, false, [], NO_LIMITS);
    client.connect(now, 'example.test', 50002, SERVER, 0);
    const seen = pump(client, server);
    const closed = seen.client.find((e) => e[0] === CLOSED);
    expect(ERROR_CODES[closed?.[3] as number]).toBe('ERR_TLS');
  });

  it('acknowledges messages only once the host says the application has them', () => {
    const { server, client, id } = connectedPair();
    client.write(now, ...ops([[1, id, 0, 'held', 0]]));
    const got = exchange(client, server, false);
    expect(got.server.filter(([e]) => e[0] === MESSAGE).map(([, b]) => b)).toEqual(['held']);
    expect(got.client.filter(([e]) => e[0] === ACKED)).toEqual([]);
    const receipt = got.server.find(([e]) => e[0] === RECEIPT)?.[0] as number[];
    server.acknowledge(now, Float64Array.from(receipt.slice(1, 4)));
    const after = exchange(client, server);
    expect(after.client.filter(([e]) => e[0] === ACKED).map(([e]) => e[2])).toEqual([1]);
  });

  it('delivers messages in order both ways and acknowledges them', () => {
    const { server, client, id, serverId } = connectedPair();
    expect(client.write(now, ...ops([1, 2, 3].map((n) => [1, id, 0, `m${n}`, 0])))).toBeUndefined();
    expect(server.write(now, ...ops([[1, serverId, 0, 'to client', 0]]))).toBeUndefined();
    const got = exchange(client, server);
    const atServer = got.server.filter(([e]) => e[0] === MESSAGE).map(([, b]) => b);
    expect(atServer).toEqual(['m1', 'm2', 'm3']);
    expect(got.client.filter(([e]) => e[0] === MESSAGE).map(([, b]) => b)).toEqual(['to client']);
    // ACKs: the client learns all three arrived, the server its one.
    const acked = got.client.filter(([e]) => e[0] === ACKED).map(([e]) => e[2]);
    expect(acked.at(-1)).toBe(3);
    expect(
      got.server
        .filter(([e]) => e[0] === ACKED)
        .map(([e]) => e[2])
        .at(-1),
    ).toBe(1);
  });

  it('answers requests, passes remote errors, and times out', () => {
    const { server, client, id } = connectedPair();
    client.write(
      now,
      ...ops([
        [2, id, 11, '{"q":1}', 0],
        [2, id, 12, '{"q":2}', 0],
      ]),
    );
    let got = exchange(client, server);
    // Each request has its own stream: they arrive independently, in any order.
    const requests = got.server.filter(([e]) => e[0] === REQUEST).sort((a, b) => a[1].localeCompare(b[1]));
    expect(requests.map(([, b]) => b)).toEqual(['{"q":1}', '{"q":2}']);
    // An answer names the request by its connection and its handle.
    const [first, second] = requests.map(([e]) => [e[1] as number, e[2] as number] as const);
    if (!first || !second) throw new Error('two requests expected');
    server.write(
      now,
      ...ops([
        [3, first[0], first[1], '{"a":1}', 0],
        [4, second[0], second[1], 'handler failed', ERROR_CODES.indexOf('ERR_REMOTE')],
      ]),
    );
    got = exchange(client, server);
    expect(got.client.find(([e]) => e[0] === RESPONSE && e[2] === 11)?.[1]).toBe('{"a":1}');
    const failed = got.client.find(([e]) => e[0] === REQUEST_FAILED && e[2] === 12);
    expect(ERROR_CODES[failed?.[0][3] as number]).toBe('ERR_REMOTE');
    expect(failed?.[1]).toBe('handler failed');
    // An answer can be given only once.
    const again = server.write(now, ...ops([[3, first[0], first[1], 'again', 0]]));
    expect(ERROR_CODES[again?.codes[0] as number]).toBe('ERR_INVALID_ARGUMENT');
    // No answer within 20 ms: ERR_TIMEOUT once the engine's timer runs.
    client.write(now, ...ops([[2, id, 13, 'slow', 20]]));
    exchange(client, server);
    now += 40;
    client.onTimeout(now);
    const timedOut = events(client).list.find((e) => e[0] === REQUEST_FAILED && e[2] === 13);
    expect(ERROR_CODES[timedOut?.[3] as number]).toBe('ERR_TIMEOUT');
  });

  it('rejects writes to unknown connections and oversized messages', () => {
    const { client, id } = connectedPair();
    const failures = client.write(
      now,
      ...ops([
        [1, 999, 0, 'nobody', 0],
        [1, id, 0, 'x'.repeat((1 << 20) + 1), 0],
        [1, id, 0, 'fine', 0],
      ]),
    );
    expect(Array.from(failures?.ops ?? [])).toEqual([0, 1]);
    const codes = Array.from(failures?.codes ?? [], (n) => ERROR_CODES[n]);
    expect(codes).toEqual(['ERR_CONNECTION_CLOSED', 'ERR_MESSAGE_TOO_LARGE']);
  });

  it('closes with ERR_NEGOTIATION when no encoding is common', () => {
    const server = Engine.server(now, cert.cert, cert.key, ['json'], NO_LIMITS, NO_LIMITS);
    const client = Engine.client(now, cert.cert, false, ['raw'], NO_LIMITS);
    client.connect(now, 'localhost', 50002, SERVER, 0);
    const seen = pump(client, server);
    const clientClosed = seen.client.find((e) => e[0] === CLOSED);
    const serverClosed = seen.server.find((e) => e[0] === CLOSED);
    expect(ERROR_CODES[clientClosed?.[3] as number]).toBe('ERR_NEGOTIATION');
    expect(seen.clientText).toContain('no common encoding: client offers [raw], server accepts [json]');
    // The client knows first (the server's HELLO came with its TLS flight) and closes before
    // its own HELLO leaves; the server sees that as a failed handshake.
    expect(serverClosed, 'the server let the connection go').toBeDefined();
    expect(JSON.parse(server.stats()).rejected).toBe(1);
    expect(seen.client.some((e) => e[0] === CONNECTION)).toBe(false);
  });

  it('a wasm client negotiates with the native server over UDP', async () => {
    const server = await QuicServer.listen({ cert: cert.cert, key: cert.key });
    const socket = createSocket('udp4');
    await new Promise<void>((r) => socket.bind(0, '127.0.0.1', r));
    const client = Engine.client(performance.now(), cert.cert, false, ['json'], NO_LIMITS);
    const seen: number[][] = [];
    let label = '';
    let timer: ReturnType<typeof setTimeout> | undefined;
    // The smallest driver: send what the engine has, collect events, follow its timer, on
    // the real clock.
    const clock = () => performance.now();
    const step = () => {
      const t = client.transmits(clock());
      const data = t.data;
      let offset = 0;
      t.lens.forEach((len, i) => {
        const [host, port] = (t.addrs[i] as string).split(':');
        socket.send(data.subarray(offset, offset + len), Number(port), host);
        offset += len;
      });
      const e = events(client);
      seen.push(...e.list);
      label += e.text;
      clearTimeout(timer);
      const deadline = client.nextDeadlineMs();
      if (deadline >= 0) {
        timer = setTimeout(() => {
          client.onTimeout(clock());
          step();
        }, deadline - clock());
      }
    };
    socket.on('message', (msg, from) => {
      client.receive(clock(), msg, new Uint32Array([msg.length]), [`${from.address}:${from.port}`]);
      step();
    });
    try {
      client.connect(clock(), 'localhost', server.port, `127.0.0.1:${server.port}`, 0);
      step();
      for (let i = 0; i < 200 && !seen.some((e) => e[0] === CONNECTION); i++) await sleep(10);
      expect(seen.some((e) => e[0] === CONNECTION)).toBe(true);
      expect(label).toBe(`json localhost:${server.port} udp`);
      for (let i = 0; i < 100 && server.peers().length === 0; i++) await sleep(10);
      expect(server.peers()[0]?.encoding).toBe('json');
    } finally {
      clearTimeout(timer);
      socket.close();
      await server.close({ graceful: false });
    }
  });

  it('reports bad arguments as ERR_INVALID_ARGUMENT, as a code on the error', () => {
    const client = Engine.client(now, cert.cert, false, [], NO_LIMITS);
    const code = (call: () => unknown) => {
      try {
        call();
      } catch (err) {
        return (err as { code?: string }).code;
      }
      return 'did not throw';
    };
    const bad = [
      () => client.connect(now, 'localhost', 1, 'not an address', 0),
      () => client.connect(now, 'bad host!', 1, SERVER, 0),
      () => Engine.client(now, 'not pem', false, [], NO_LIMITS),
      () => Engine.client(now, cert.cert, false, ['xml'], NO_LIMITS),
      () => Engine.server(now, 'x', 'y', [], NO_LIMITS, NO_LIMITS),
      () => generateDevCert([]),
    ];
    for (const call of bad) expect(code(call)).toBe('ERR_INVALID_ARGUMENT');
    expect(() => Engine.client(now, cert.cert, false, [], new Float64Array([0]))).toThrow(/maxMessageSize/);
  });
});
