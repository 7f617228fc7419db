// QUIC's own powers beyond streams, on every backend: congestion controllers and the path
// figures a connection reports.

import { describe, expect, it } from 'vitest';
import type { CongestionControl } from '../ts/index.js';
import { echoServer, transport } from './helpers.js';

describe('congestion control and path stats', () => {
  it.each<CongestionControl>(['cubic', 'newreno', 'bbr'])('runs %s and reports the path', async (cc) => {
    const server = await echoServer({ congestionControl: cc });
    const t = transport({ congestionControl: cc, encoding: 'raw' });
    const conn = await t.connect('127.0.0.1', server.port);
    const body = new Uint8Array(64 * 1024).fill(7);
    const answers = await Promise.all(Array.from({ length: 32 }, () => t.request(conn, body)));
    expect(answers.every((a) => (a as Uint8Array).length === body.length)).toBe(true);

    const s = t.getPoolStats().connections[0];
    expect(s).toBeDefined();
    if (!s) return;
    expect(s.congestionControl).toBe(cc);
    expect(s.cwnd).toBeGreaterThan(0);
    // On loopback datagrams are sized for its 64 KiB MTU.
    expect(s.mtu).toBeGreaterThan(1200);
    expect(s.minRttMs).toBeGreaterThan(0);
    expect(s.minRttMs).toBeLessThanOrEqual(s.rttMs);
    expect(s.congestionEvents).toBeGreaterThanOrEqual(0);
    expect(s.lostBytes).toBeGreaterThanOrEqual(0);
    expect(s.udpTx).toBeGreaterThan(32);
    expect(server.stats().totals.congestionControl).toBe(cc);
  });

  it('rejects an unknown controller', () => {
    for (const bad of ['reno', '', 3, null]) {
      const make = () => transport({ congestionControl: bad as unknown as CongestionControl });
      expect(make).toThrowError(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }));
    }
  });
});
