// Faults a transport must survive with its promises kept: a connection flood against the
// server's limits, a reader that stops reading, a server killed mid-traffic, and a process
// ending with engines still open.

import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { QuicwireError } from '../ts/index.js';
import {
  cert,
  echoServer,
  exited,
  fixture,
  rejectsWith,
  serverProcess,
  sleep,
  transport,
} from './helpers.js';

/** `promise`, marked handled: it is settled later, all at once. */
function later<T>(promise: Promise<T>): Promise<T> {
  promise.catch(() => {});
  return promise;
}

/** Settles every promise; returns which resolved and the codes of those that rejected. */
async function settle(sends: Promise<unknown>[]) {
  const results = await Promise.allSettled(sends);
  const resolved: number[] = [];
  const codes = new Set<string>();
  results.forEach((r, i) => {
    if (r.status === 'fulfilled') resolved.push(i);
    else codes.add(r.reason instanceof QuicwireError ? r.reason.code : String(r.reason));
  });
  return { resolved, codes };
}

describe('server limits', () => {
  it('refuses connections past maxConnectionsPerIp with a clear error, and frees places', async () => {
    const server = await echoServer({ maxConnectionsPerIp: 1 });
    const first = transport();
    const conn = await first.connect('127.0.0.1', server.port);
    const second = transport();
    const err = await rejectsWith(second.connect('127.0.0.1', server.port), 'ERR_CONNECTION_CLOSED');
    expect(err.message).toMatch(/connection limit/);
    expect(server.stats().refused).toBe(1);
    expect(await first.request(conn, 'still served')).toBe('still served');
    await first.disconnect(conn);
    let again: Awaited<ReturnType<typeof second.connect>> | undefined;
    for (let i = 0; i < 50 && !again; i++) {
      // Refused until the server has seen the first go; any other error fails the test.
      again = await second.connect('127.0.0.1', server.port).catch(async (e: QuicwireError) => {
        if (e.code !== 'ERR_CONNECTION_CLOSED') throw e;
        await sleep(50);
        return undefined;
      });
    }
    expect(again, 'the freed place goes to the next client').toBeDefined();
  });

  it('validates client addresses with retry tokens when asked', async () => {
    const server = await echoServer({ validateAddresses: true });
    const t = transport();
    expect(await t.request(`127.0.0.1:${server.port}`, 'validated')).toBe('validated');
    expect(server.stats().accepted).toBe(1);
  });

  it('rejects bad limit options', async () => {
    await rejectsWith(echoServer({ maxConnections: 0 }), 'ERR_INVALID_ARGUMENT');
    await rejectsWith(echoServer({ maxConnectionsPerIp: -1 }), 'ERR_INVALID_ARGUMENT');
    await rejectsWith(echoServer({ validateAddresses: 'yes' as never }), 'ERR_INVALID_ARGUMENT');
  });
});

describe('a reader that stops reading', () => {
  it('bounds the sender: sends wait past sendBufferHigh, then fail ERR_FLOW_CONTROL_PAUSED; nothing lost', async () => {
    const server = await serverProcess();
    const t = transport({ ca: server.ca, sendBufferHigh: 64 * 1024 });
    const conn = await t.connect('127.0.0.1', server.port);
    server.child.kill('SIGSTOP');
    const body = 'x'.repeat(1000);
    const sends = Array.from({ length: 300 }, (_, seq) => later(t.send(conn, { seq, body })));
    // With the reader stopped, nothing is acknowledged: only the first 2 × 64 KiB are
    // taken (sent or waiting); the rest fail at once.
    await sleep(300);
    server.child.kill('SIGCONT');
    const { resolved, codes } = await settle(sends);
    expect([...codes]).toEqual(['ERR_FLOW_CONTROL_PAUSED']);
    expect(resolved.length).toBeGreaterThan(64);
    expect(resolved.length).toBeLessThan(300);
    // Exactly the resolved messages arrived, once each, in order.
    expect(await t.request(conn, { op: 'seqs' })).toEqual(resolved);
  });
});

describe('a server killed mid-traffic and restarted', () => {
  it('fails pending calls with ERR_CONNECTION_CLOSED, re-dials, and keeps delivery promises', async () => {
    const log = join(mkdtempSync(join(tmpdir(), 'quicwire-restart-')), 'seqs');
    const env = { QUICWIRE_LOG: log, QUICWIRE_CERT: cert.cert, QUICWIRE_KEY: cert.key };
    const first = await serverProcess(env);
    const t = transport({ keepAliveMs: 300 });
    const target = `127.0.0.1:${first.port}`;
    const conn = await t.connect('127.0.0.1', first.port);
    const pending = [
      later(t.request(conn, { sleepMs: 60_000 })),
      later(t.request(conn, { sleepMs: 60_000 })),
    ];
    // Messages keep flowing while the server dies.
    const sends: Promise<void>[] = [];
    let seq = 0;
    const traffic = setInterval(() => {
      for (let i = 0; i < 20; i++) sends.push(later(t.send(conn, { seq: seq++ })));
    }, 2);
    await sleep(200);
    first.child.kill('SIGKILL');
    await exited(first.child);
    await sleep(50);
    clearInterval(traffic);
    for (const p of pending) await rejectsWith(p, 'ERR_CONNECTION_CLOSED');
    const { resolved, codes } = await settle(sends);
    expect([...codes]).toEqual(['ERR_CONNECTION_CLOSED']);
    // Every message whose send resolved had reached the dead server's application, once.
    const logged = readFileSync(log, 'utf8').trim().split('\n').map(Number);
    expect(new Set(logged).size, 'no duplicates').toBe(logged.length);
    const seen = new Set(logged);
    expect(
      resolved.filter((s) => !seen.has(s)),
      'resolved but never delivered',
    ).toEqual([]);
    expect(resolved.length).toBeGreaterThan(0);
    // The same address comes back: the pool dropped the dead connection and re-dials.
    const second = await serverProcess({ ...env, QUICWIRE_PORT: String(first.port) });
    expect(await t.request(target, 'back')).toBe('back');
    await t.send(target, { seq: -1 });
    expect(await t.request(target, { op: 'seqs' })).toEqual([-1]);
    expect(t.getPoolStats().created).toBe(2);
    second.child.kill();
  });
});

describe('a process that made many connections', () => {
  // Node runs its loop once more while it tears down: an engine timer firing then crashed it.
  it.each(['close', 'exit'])('exits cleanly after %s', async (how) => {
    const child = fixture('churn-exit.ts', [how, '200']);
    await exited(child);
    expect(child.signalCode).toBeNull();
    expect(child.exitCode).toBe(0);
  });
});
