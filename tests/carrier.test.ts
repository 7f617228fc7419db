// QUIC carried over TCP, for networks that block UDP: a server with `tcp: true` takes the
// same connections on a TCP port of the same number, and a client with `transport: 'tcp'`
// makes them there. The engine, TLS, delivery and ordering are the same as over UDP.

import { readFileSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { generateDevCert, QuicServer } from '../ts/index.js';
import { cert, echoServer, eventually, rejectsWith, throwsWith, transport } from './helpers.js';

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

  it('a server without tcp takes no TCP: the client times out', async () => {
    const server = await echoServer();
    const t = transport({ transport: 'tcp', connectTimeoutMs: 1000 });
    await rejectsWith(t.connect('127.0.0.1', server.port), 'ERR_CONNECT_TIMEOUT');
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
