// Prometheus metrics through prom-client: a server's and a client's figures, scraped from a
// registry of the test's own after known traffic, and checked against it.

import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { collectMetrics } from '../ts/index.js';
import { connectedPair, eventually, rejectsWith, transport } from './helpers.js';

/** The value of `name{labels…}` in a scrape, or undefined. */
function value(scrape: string, name: string, labels: Record<string, string>): number | undefined {
  for (const line of scrape.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const [series, v] = line.split(' ') as [string, string];
    const has = Object.entries(labels).every(([k, l]) => series.includes(`${k}="${l}"`));
    if (has) return Number(v);
  }
  return undefined;
}

describe('metrics', () => {
  it("report a server's and a client's traffic, errors and request durations", async () => {
    const { server, t, conn } = await connectedPair();
    const registry = new Registry();
    const stopServer = await collectMetrics(server, { registry, labels: { name: 'test' } });
    await collectMetrics(t, { registry, labels: { name: 'test' } });
    let got = 0;
    server.onMessage(() => {
      got++;
    });
    await t.sendBatch(conn, ['a', 'b', 'c', 'd', 'e']);
    for (let i = 0; i < 7; i++) await t.request(conn, { i });
    await rejectsWith(t.request(conn, { fail: 'on purpose' }), 'ERR_REMOTE');
    await eventually(() => got === 5, 'the messages arrived');

    const scrape = await registry.metrics();
    const server_ = { role: 'server', name: 'test' };
    const client = { role: 'client', name: 'test' };
    expect(value(scrape, 'quicwire_connections', server_)).toBe(1);
    expect(value(scrape, 'quicwire_connections', client)).toBe(1);
    expect(value(scrape, 'quicwire_messages_total', { ...server_, direction: 'in' })).toBe(5);
    expect(value(scrape, 'quicwire_messages_total', { ...client, direction: 'out' })).toBe(5);
    expect(value(scrape, 'quicwire_requests_total', { ...client, direction: 'out' })).toBe(8);
    expect(value(scrape, 'quicwire_requests_total', { ...server_, direction: 'in' })).toBe(8);
    expect(value(scrape, 'quicwire_bytes_total', { ...client, direction: 'out' })).toBeGreaterThan(0);
    // The answers' bytes, as the server sent them and the client got them.
    const answered = value(scrape, 'quicwire_bytes_total', { ...server_, direction: 'out' }) ?? 0;
    expect(answered).toBeGreaterThan(0);
    expect(value(scrape, 'quicwire_bytes_total', { ...client, direction: 'in' })).toBe(answered);
    expect(value(scrape, 'quicwire_errors_total', { ...client, code: 'ERR_REMOTE' })).toBe(1);
    expect(value(scrape, 'quicwire_errors_total', { ...server_, code: 'ERR_REMOTE' })).toBe(1);
    expect(value(scrape, 'quicwire_request_duration_seconds_count', { ...client, side: 'made' })).toBe(8);
    expect(value(scrape, 'quicwire_request_duration_seconds_count', { ...server_, side: 'answered' })).toBe(
      8,
    );
    expect(value(scrape, 'quicwire_rtt_seconds', client)).toBeGreaterThan(0);
    expect(value(scrape, 'quicwire_congestion_window_bytes', client)).toBeGreaterThan(0);

    // Counters never go down: a closed connection's traffic stays counted.
    await t.disconnect(conn);
    await eventually(() => server.stats().connections === 0, 'the server saw the close');
    const after = await registry.metrics();
    expect(value(after, 'quicwire_connections', server_)).toBe(0);
    expect(value(after, 'quicwire_messages_total', { ...server_, direction: 'in' })).toBe(5);
    expect(value(after, 'quicwire_requests_total', { ...client, direction: 'out' })).toBe(8);

    // Stopped, an endpoint reports nothing more.
    stopServer();
    expect(value(await registry.metrics(), 'quicwire_connections', server_)).toBeUndefined();
  });

  it('refuse a second watch, bad options, and label names that differ in one registry', async () => {
    const { server } = await connectedPair();
    const registry = new Registry();
    await collectMetrics(server, { registry });
    await rejectsWith(collectMetrics(server, { registry }), 'ERR_INVALID_ARGUMENT');
    await rejectsWith(
      collectMetrics(transport(), { registry, labels: { name: 'x' } }),
      'ERR_INVALID_ARGUMENT',
    );
    await rejectsWith(
      collectMetrics(transport(), { registry, nonsense: 1 } as unknown as { registry: Registry }),
      'ERR_INVALID_ARGUMENT',
    );
  });
});
