// QUIC carried over TCP, for networks that block UDP: a server with `tcp: true` takes the
// same connections on a TCP port of the same number, and a client with `transport: 'tcp'`
// makes them there (or with 'auto', when UDP has not answered in time). The engine, TLS,
// delivery and ordering are the same as over UDP. The UDP block is real where the tests run
// as root: two network namespaces whose nftables drop every UDP packet.

import { createSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { type AddressInfo, createServer, connect as tcpConnect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { generateDevCert, QuicServer, type QuicTransport } from '../ts/index.js';
import { HEALTHY } from './fixtures/exchange.js';
import { lineFrom } from './fixtures/spawn.js';
import {
  cert,
  echoServer,
  eventually,
  fixture,
  rejectsWith,
  serverProcess,
  throwsWith,
  transport,
} from './helpers.js';
import { lossyLink, lossyLinkUnavailable } from './lossy-link.js';

const noNamespaces = lossyLinkUnavailable();
if (noNamespaces) console.warn(`UDP-block tests skipped: ${noNamespaces}`);

/** TCP connections established to or from `port` on this host (/proc/net/tcp). */
function established(port: number): number {
  const hex = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  return readFileSync('/proc/net/tcp', 'utf8')
    .split('\n')
    .slice(1)
    .map((line) => line.trim().split(/\s+/))
    .filter(([, local, remote, state]) => state === '01' && (local?.endsWith(hex) || remote?.endsWith(hex)))
    .length;
}

describe('QUIC over TCP', () => {
  it('carries messages, requests and a large payload, and the stats say so', async () => {
    const server = await echoServer({ tcp: true, maxMessageSize: 16 << 20 });
    const got: unknown[] = [];
    server.onMessage((msg) => {
      got.push(msg);
    });
    const t = transport({ transport: 'tcp', maxMessageSize: 16 << 20 });
    const conn = await t.connect('127.0.0.1', server.port);
    await t.sendBatch(
      conn,
      Array.from({ length: 1000 }, (_, n) => ({ n })),
    );
    const replies = await Promise.all(Array.from({ length: 1000 }, (_, i) => t.request(conn, { i })));
    expect(replies).toEqual(Array.from({ length: 1000 }, (_, i) => ({ i })));
    expect(got).toEqual(Array.from({ length: 1000 }, (_, n) => ({ n })));
    const big = new Uint8Array(8 << 20).map((_, i) => i % 251);
    expect(Buffer.compare(Buffer.from((await t.request(conn, big)) as Uint8Array), Buffer.from(big))).toBe(0);
    // Pushed from the server, too.
    const [peer] = server.peers();
    await peer?.send({ pushed: true });
    expect(await t.receive(conn, { timeoutMs: 5000 })).toEqual({ pushed: true });
    expect(t.getPoolStats().connections[0]?.carrier).toBe('tcp');
    expect(server.stats().totals.requestsIn).toBe(1001);
    expect(server.stats().connections).toBe(1);
  });

  it('is the same QUIC: the certificate is checked, and a wrong one fails the handshake', async () => {
    const server = await echoServer({ tcp: true });
    const other = generateDevCert(['127.0.0.1']);
    const t = transport({ transport: 'tcp', ca: other.cert, connectTimeoutMs: 2000 });
    await rejectsWith(t.connect('127.0.0.1', server.port), 'ERR_TLS');
  });

  it('UDP clients and TCP clients share one server', async () => {
    const server = await echoServer({ tcp: true });
    const overUdp = transport();
    const overTcp = transport({ transport: 'tcp' });
    expect(await overUdp.request(`127.0.0.1:${server.port}`, 'u')).toBe('u');
    expect(await overTcp.request(`127.0.0.1:${server.port}`, 't')).toBe('t');
    expect(overUdp.getPoolStats().connections[0]?.carrier).toBe('udp');
    expect(server.stats().connections).toBe(2);
  });

  it('a connection that closes takes its TCP connection with it', async () => {
    const server = await echoServer({ tcp: true });
    const t = transport({ transport: 'tcp' });
    const conn = await t.connect('127.0.0.1', server.port);
    expect(await t.request(conn, 'x')).toBe('x');
    // Both ends of the one loopback TCP connection.
    expect(established(server.port)).toBe(2);
    // A pooled connection is reused: no second TCP connection.
    expect(await t.connect('127.0.0.1', server.port)).toBe(conn);
    expect(established(server.port)).toBe(2);
    await t.disconnect(conn);
    await eventually(() => established(server.port) === 0, 'the TCP connection closed');
  });

  // The carrier is the facade's, the same for both backends: once is enough for 10 s.
  it.runIf(process.env.QUICWIRE_BACKEND !== 'wasm')(
    'a TCP stream that carries no QUIC connection is closed after 10 s, silent or sending garbage',
    async () => {
      const server = await echoServer({ tcp: true });
      const closed = (socket: ReturnType<typeof tcpConnect>) =>
        new Promise<number>((resolve) => {
          const started = performance.now();
          socket.on('error', () => {});
          socket.on('close', () => resolve(performance.now() - started));
        });
      const silent = tcpConnect(server.port, '127.0.0.1');
      const noisy = tcpConnect(server.port, '127.0.0.1');
      // Frames of 1,200 bytes of nothing QUIC can parse.
      const junk = new Uint8Array(1202).fill(7);
      junk[0] = 0x04;
      junk[1] = 0xb0;
      noisy.write(junk);
      noisy.write(junk);
      const [a, b] = await Promise.all([closed(silent), closed(noisy)]);
      for (const ms of [a, b]) expect(ms).toBeGreaterThan(9_000);
      expect(server.stats().connections).toBe(0);
    },
    20_000,
  );

  it('works over IPv6 as over IPv4', async () => {
    const server = await echoServer({ tcp: true, host: '::1' });
    const t = transport({ transport: 'tcp' });
    const conn = await t.connect('::1', server.port);
    expect(conn.carrier).toBe('tcp');
    expect(await t.request(conn, 'six')).toBe('six');
  });

  it("a server's limit per client IP holds over TCP too", async () => {
    const server = await echoServer({ tcp: true, maxConnectionsPerIp: 2 });
    const clients = [0, 1, 2].map(() => transport({ transport: 'tcp' }));
    const [a, b, c] = clients as [QuicTransport, QuicTransport, QuicTransport];
    expect(await a.request(`127.0.0.1:${server.port}`, 'a')).toBe('a');
    expect(await b.request(`127.0.0.1:${server.port}`, 'b')).toBe('b');
    const err = await rejectsWith(c.connect('127.0.0.1', server.port), 'ERR_CONNECTION_CLOSED');
    expect(err.message).toMatch(/connection limit/);
    expect(server.stats().refused).toBe(1);
  });

  it('a server without tcp refuses the TCP connection: connect fails at once, saying why', async () => {
    const server = await echoServer();
    const t = transport({ transport: 'tcp' });
    const err = await rejectsWith(t.connect('127.0.0.1', server.port), 'ERR_CONNECTION_CLOSED');
    expect(err.message).toMatch(/TCP connection carrying it closed/);
  });

  it('a TCP connection that breaks takes its QUIC connection with it at once', async () => {
    const server = await echoServer({ tcp: true });
    // A relay between client and server, whose sockets we can cut.
    const cut: (() => void)[] = [];
    const relay = createServer((inbound) => {
      const outbound = tcpConnect(server.port, '127.0.0.1');
      inbound.pipe(outbound).pipe(inbound);
      inbound.on('error', () => {});
      outbound.on('error', () => {});
      cut.push(() => {
        inbound.destroy();
        outbound.destroy();
      });
    });
    await new Promise<void>((r) => relay.listen(0, '127.0.0.1', () => r()));
    try {
      const t = transport({ transport: 'tcp', keepAliveMs: 60_000 });
      const conn = await t.connect('127.0.0.1', (relay.address() as AddressInfo).port);
      expect(await t.request(conn, 'before')).toBe('before');
      for (const c of cut) c();
      // Well before any QUIC timeout (three keep-alives: 3 minutes here).
      await eventually(() => !conn.isOpen, 'the connection closed', 3000);
      expect(conn.closeReason?.code).toBe('ERR_CONNECTION_CLOSED');
      expect(conn.closeReason?.message).toMatch(/TCP connection carrying it closed/);
      await rejectsWith(t.request(conn, 'after'), 'ERR_CONNECTION_CLOSED');
      await eventually(() => server.stats().connections === 0, 'the server let go of it', 3000);
    } finally {
      relay.close();
    }
  });

  it("'auto' stays on UDP where UDP answers: no TCP connection is made", async () => {
    const server = await echoServer({ tcp: true });
    const t = transport({ transport: 'auto' });
    const conn = await t.connect('127.0.0.1', server.port);
    expect(conn.carrier).toBe('udp');
    expect(await t.request(conn, 'u')).toBe('u');
    expect(established(server.port)).toBe(0);
  });

  it("'auto' falls back to TCP after fallbackDelayMs when UDP goes unanswered", async () => {
    const server = await echoServer({ tcp: true });
    // A port whose UDP swallows everything and whose TCP leads to the server: a path where
    // only TCP gets through.
    const sink = createSocket('udp4');
    await new Promise<void>((r) => sink.bind(0, '127.0.0.1', () => r()));
    const port = sink.address().port;
    const relay = createServer((inbound) => {
      const outbound = tcpConnect(server.port, '127.0.0.1');
      inbound.pipe(outbound).pipe(inbound);
      inbound.on('error', () => outbound.destroy());
      outbound.on('error', () => inbound.destroy());
    });
    await new Promise<void>((r) => relay.listen(port, '127.0.0.1', () => r()));
    try {
      const t = transport({ transport: 'auto', fallbackDelayMs: 100 });
      const started = performance.now();
      const conn = await t.connect('127.0.0.1', port);
      expect(performance.now() - started).toBeGreaterThanOrEqual(100);
      expect(conn.carrier).toBe('tcp');
      const replies = await Promise.all(Array.from({ length: 100 }, (_, i) => t.request(conn, { i })));
      expect(replies).toEqual(Array.from({ length: 100 }, (_, i) => ({ i })));
      expect(t.getPoolStats().connections[0]?.carrier).toBe('tcp');
      // The UDP attempt that lost is gone: one connection in the pool, none failed.
      const stats = t.getPoolStats();
      expect(stats.active + stats.idle).toBe(1);
      expect(stats.failed).toBe(0);
    } finally {
      relay.close();
      sink.close();
    }
  });

  describe.skipIf(noNamespaces)('behind a real UDP block (network namespaces)', () => {
    for (const blockUdp of [true, false]) {
      it(`'auto' ${blockUdp ? 'gets through over TCP where nftables drop all UDP' : 'uses UDP where it is open'}`, async () => {
        const link = lossyLink(0, { blockUdp });
        try {
          const tls = generateDevCert([link.serverIp]);
          const server = await serverProcess(
            {
              QUICWIRE_HOST: link.serverIp,
              QUICWIRE_CERT: tls.cert,
              QUICWIRE_KEY: tls.key,
              QUICWIRE_TCP: '1',
            },
            link.spawn.bind(link, 'server'),
          );
          const client = fixture(
            'exchange-client.ts',
            [String(server.port), link.serverIp],
            { QUICWIRE_CA: tls.cert, QUICWIRE_TRANSPORT: 'auto' },
            link.spawn.bind(link, 'client'),
          );
          const seen = JSON.parse(await lineFrom(client)) as Record<string, unknown>;
          expect(seen).toMatchObject({ ...HEALTHY, carrier: blockUdp ? 'tcp' : 'udp' });
          if (blockUdp) expect(link.dropped()).toBeGreaterThan(0);
        } finally {
          link.close();
        }
      }, 60_000);
    }
  });

  it('rejects bad options and a TCP port already taken', async () => {
    throwsWith(() => transport({ transport: 'quic' as 'udp' }), 'ERR_INVALID_ARGUMENT');
    await rejectsWith(
      QuicServer.listen({ cert: cert.cert, key: cert.key, tcp: 'yes' as unknown as boolean }),
      'ERR_INVALID_ARGUMENT',
    );
    const taken = createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', () => r()));
    const { port } = taken.address() as AddressInfo;
    try {
      await rejectsWith(QuicServer.listen({ cert: cert.cert, key: cert.key, port, tcp: true }), 'ERR_IO');
      // The UDP port it bound first is free again: a server without tcp takes it.
      const server = await echoServer({ port });
      expect(server.port).toBe(port);
    } finally {
      taken.close();
    }
  });
});
