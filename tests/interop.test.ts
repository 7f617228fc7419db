// Backends interoperate on the wire: this process's client (one backend) against a server
// process on the other backend.

import { describe, expect, it } from 'vitest';
import { serverProcess, transport } from './helpers.js';

const here = process.env.QUICWIRE_BACKEND ?? 'native';
const other = here === 'native' ? 'wasm' : 'native';

describe(`interop: ${here} client <-> ${other} server`, () => {
  it('exchanges messages and requests', async () => {
    const { child, ...server } = await serverProcess({ QUICWIRE_BACKEND: other });
    const t = transport({ ca: server.ca, maxMessageSize: 16 << 20 });
    const conn = await t.connect('127.0.0.1', server.port);
    await t.sendBatch(
      conn,
      Array.from({ length: 100 }, (_, i) => ({ i })),
    );
    expect(await t.request(conn, { op: 'count' })).toBe(100);
    const replies = await Promise.all(Array.from({ length: 1000 }, (_, i) => t.request(conn, { i })));
    expect(replies).toEqual(Array.from({ length: 1000 }, (_, i) => ({ i })));
    const big = new Uint8Array(8 << 20).map((_, i) => i % 253);
    const back = (await t.request(conn, big)) as Uint8Array;
    expect(Buffer.compare(Buffer.from(back), Buffer.from(big))).toBe(0);
    // Graceful close: a request in flight still gets its answer.
    const slow = t.request(conn, { sleepMs: 300, last: true });
    expect(await t.request(conn, { op: 'close' })).toBe('closing');
    expect(await slow).toEqual({ sleepMs: 300, last: true });
    const exited = await new Promise<number | null>((r) => child.once('exit', r));
    expect(exited).toBe(0);
  });
});
