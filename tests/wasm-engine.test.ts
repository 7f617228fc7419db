// The QUIC engine compiled to WebAssembly (pkg/, built by wasm-pack-build.sh): two engines
// complete real TLS 1.3 handshakes with datagrams handed over in memory. The addresses are
// labels only; nothing touches the network.

import { createSocket } from 'node:dgram';
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import init, { Engine, errorCodes, generateDevCert } from '../pkg/quicwire_wasm.js';
import { QuicServer } from '../ts/index.js';
import { sleep } from './helpers.js';

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

function events(engine: Engine): { list: number[][]; text: string } {
  const flat = engine.takeEvents();
  const list: number[][] = [];
  for (let i = 0; i < flat.length; i += 7) list.push(Array.from(flat.subarray(i, i + 7)));
  return { list, text: new TextDecoder().decode(engine.takeEventText()) };
}

/** Passes datagrams between the two engines until both are quiet. */
function pump(client: Engine, server: Engine): Seen {
  const seen: Seen = { client: [], server: [], clientText: '', serverText: '' };
  for (let round = 0; round < 100; round++) {
    const c = client.transmits();
    for (const to of c.addrs) expect(to).toBe(SERVER);
    if (c.lens.length > 0)
      server.receive(
        c.data,
        c.lens,
        c.addrs.map(() => CLIENT),
      );
    const s = server.transmits();
    for (const to of s.addrs) expect(to).toBe(CLIENT);
    if (s.lens.length > 0)
      client.receive(
        s.data,
        s.lens,
        s.addrs.map(() => SERVER),
      );
    const ce = events(client);
    seen.client.push(...ce.list);
    seen.clientText += ce.text;
    const se = events(server);
    seen.server.push(...se.list);
    seen.serverText += se.text;
    if (c.lens.length === 0 && s.lens.length === 0) break;
  }
  return seen;
}

describe('wasm engine (quinn-proto in WebAssembly)', () => {
  const cert = generateDevCert(['localhost', '127.0.0.1']);

  it('completes a verified TLS 1.3 handshake', () => {
    const server = Engine.server(cert.cert, cert.key, []);
    const client = Engine.client(cert.cert, false, []);
    const id = client.connect(SERVER, 'localhost');
    const seen = pump(client, server);
    // CONNECTION comes once TLS is done and HELLO/WELCOME agreed on an encoding.
    const connected = seen.client.find((e) => e[0] === CONNECTION && e[1] === id);
    expect(connected?.[4], "the server's maxMessageSize").toBe(1 << 20);
    expect(seen.clientText).toBe(`msgpack ${SERVER}`);
    expect(seen.server.some((e) => e[0] === CONNECTION)).toBe(true);
    expect(seen.serverText).toBe(`msgpack ${CLIENT}`);
    expect(client.connectionCount()).toBe(1);
    expect(server.connectionCount()).toBe(1);
    // Timers keep working once connected (keep-alive is armed).
    expect(client.nextTimeoutMs()).toBeGreaterThan(0);
    client.onTimeout();
  });

  it('rejects an untrusted certificate with ERR_TLS', () => {
    const other = generateDevCert(['localhost']);
    const server = Engine.server(cert.cert, cert.key, []);
    const client = Engine.client(other.cert, false, []);
    client.connect(SERVER, 'localhost');
    const seen = pump(client, server);
    const closed = seen.client.find((e) => e[0] === CLOSED);
    expect(closed, 'the client saw its handshake fail').toBeDefined();
    expect(errorCodes()[closed?.[3] as number]).toBe('ERR_TLS');
    expect(seen.clientText).toMatch(/certificate|UnknownIssuer/i);
    expect(seen.client.some((e) => e[0] === CONNECTION)).toBe(false);
  });

  it('rejects a certificate for another name with ERR_TLS', () => {
    const server = Engine.server(cert.cert, cert.key, []);
    const client = Engine.client(cert.cert, false, []);
    client.connect(SERVER, 'example.test');
    const seen = pump(client, server);
    const closed = seen.client.find((e) => e[0] === CLOSED);
    expect(errorCodes()[closed?.[3] as number]).toBe('ERR_TLS');
  });

  it('closes with ERR_NEGOTIATION when no encoding is common', () => {
    const server = Engine.server(cert.cert, cert.key, ['json']);
    const client = Engine.client(cert.cert, false, ['raw']);
    client.connect(SERVER, 'localhost');
    const seen = pump(client, server);
    const clientClosed = seen.client.find((e) => e[0] === CLOSED);
    const serverClosed = seen.server.find((e) => e[0] === CLOSED);
    expect(errorCodes()[clientClosed?.[3] as number]).toBe('ERR_NEGOTIATION');
    expect(errorCodes()[serverClosed?.[3] as number]).toBe('ERR_NEGOTIATION');
    expect(seen.clientText).toContain('no common encoding');
    expect(seen.client.some((e) => e[0] === CONNECTION)).toBe(false);
  });

  it('a wasm client negotiates with the native server over UDP', async () => {
    const server = await QuicServer.listen({ cert: cert.cert, key: cert.key });
    const socket = createSocket('udp4');
    await new Promise<void>((r) => socket.bind(0, '127.0.0.1', r));
    const client = Engine.client(cert.cert, false, ['json']);
    const seen: number[][] = [];
    let label = '';
    let timer: ReturnType<typeof setTimeout> | undefined;
    // The smallest driver: send what the engine has, collect events, follow its timer.
    const step = () => {
      const t = client.transmits();
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
      const ms = client.nextTimeoutMs();
      if (ms >= 0) {
        timer = setTimeout(() => {
          client.onTimeout();
          step();
        }, ms);
      }
    };
    socket.on('message', (msg, from) => {
      client.receive(msg, new Uint32Array([msg.length]), [`${from.address}:${from.port}`]);
      step();
    });
    try {
      client.connect(`127.0.0.1:${server.port}`, 'localhost');
      step();
      for (let i = 0; i < 200 && !seen.some((e) => e[0] === CONNECTION); i++) await sleep(10);
      expect(seen.some((e) => e[0] === CONNECTION)).toBe(true);
      expect(label).toBe(`json 127.0.0.1:${server.port}`);
      for (let i = 0; i < 100 && server.peers().length === 0; i++) await sleep(10);
      expect(server.peers()[0]?.encoding).toBe('json');
    } finally {
      clearTimeout(timer);
      socket.close();
      await server.close({ graceful: false });
    }
  });

  it('reports bad arguments as ERR_INVALID_ARGUMENT', () => {
    const client = Engine.client(cert.cert, false, []);
    expect(() => client.connect('not an address', 'localhost')).toThrow(/^ERR_INVALID_ARGUMENT/);
    expect(() => Engine.client('not pem', false, [])).toThrow(/^ERR_INVALID_ARGUMENT/);
    expect(() => Engine.client(cert.cert, false, ['xml'])).toThrow(/^ERR_INVALID_ARGUMENT/);
    expect(() => Engine.server('x', 'y', [])).toThrow(/^ERR_INVALID_ARGUMENT/);
    expect(() => generateDevCert([])).toThrow(/^ERR_INVALID_ARGUMENT/);
  });
});
