// ServerWorkers: servers on worker threads sharing one UDP port, the kernel routing each
// connection's packets to its worker by connection ID, migrations included.

import { describe, expect, it } from 'vitest';
import { backend, QuicServer, ServerWorkers, type WorkerServerOptions } from '../ts/index.js';
import { cert, eventually, rejectsWith, transport } from './helpers.js';

const app = new URL('./fixtures/worker-app.ts', import.meta.url);

function options(extra: Partial<WorkerServerOptions> = {}): WorkerServerOptions {
  return { cert: cert.cert, key: cert.key, workers: 2, module: app, ...extra };
}

interface Answer {
  worker: number;
  workers: number;
  n: number;
  data: unknown;
}

describe.runIf(backend() === 'native')('server workers', () => {
  it('spreads connections over the workers, and keeps each on its worker when it migrates', async () => {
    const workers = await ServerWorkers.listen(options({ data: { hello: 'workers' } }));
    try {
      expect(workers.workers).toBe(2);
      const clients = Array.from({ length: 16 }, () => transport());
      const conns = await Promise.all(clients.map((t) => t.connect('127.0.0.1', workers.port)));
      const seen = conns.map(() => new Set<number>());
      for (let round = 1; round <= 3; round++) {
        await Promise.all(
          conns.map(async (c, i) => {
            for (let k = 1; k <= 5; k++) {
              const a = (await c.request({ i })) as Answer;
              seen[i]?.add(a.worker);
              // The same server-side connection all along: its count goes on.
              expect(a.n).toBe((round - 1) * 5 + k);
              expect(a.data).toEqual({ hello: 'workers' });
              expect(a.workers).toBe(2);
            }
          }),
        );
        // New client ports: every connection migrates, and the kernel's hash of the new
        // addresses would send about half of them to the other worker.
        await Promise.all(clients.map((t) => t.rebind()));
      }
      for (const s of seen) expect(s.size).toBe(1);
      const byWorker = [0, 1].map((w) => seen.filter((s) => s.has(w)).length);
      expect(byWorker[0]).toBeGreaterThan(0);
      expect(byWorker[1]).toBeGreaterThan(0);
      const stats = await workers.stats();
      expect(stats.map((s) => s?.accepted)).toEqual(byWorker);
      expect(stats.map((s) => s?.connections)).toEqual(byWorker);
    } finally {
      await workers.close();
    }
    // Every worker's socket closed with it: the port is free.
    const after = await QuicServer.listen({ cert: cert.cert, key: cert.key, port: workers.port });
    await after.close({ graceful: false });
  });

  it('a worker that fails leaves the others serving, and says so', async () => {
    const workers = await ServerWorkers.listen(options());
    const exits: { worker: number; error: string | undefined }[] = [];
    workers.onWorkerExit((worker, error) => exits.push({ worker, error: error?.message }));
    try {
      const conns = await Promise.all(
        Array.from({ length: 12 }, () => transport().connect('127.0.0.1', workers.port)),
      );
      const on = await Promise.all(conns.map(async (c) => ((await c.request({})) as Answer).worker));
      // Its answer may not leave before the thread ends.
      conns[0]?.request({ op: 'crash' }, { timeoutMs: 1000 }).catch(() => null);
      await eventually(() => exits.length === 1, 'the worker exits');
      expect(exits[0]).toEqual({ worker: on[0], error: `worker ${on[0]} crashed on purpose` });
      const survivors = conns.filter((_, i) => on[i] !== on[0]);
      for (const c of survivors) expect(((await c.request({})) as Answer).worker).not.toBe(on[0]);
      expect((await workers.stats())[on[0] as number]).toBeNull();
    } finally {
      await workers.close();
    }
  });

  it('a worker that cannot start fails the whole start, and frees the port', async () => {
    const empty = new URL('./fixtures/spawn.ts', import.meta.url); // no default export
    const taken = await QuicServer.listen({ cert: cert.cert, key: cert.key });
    const port = taken.port;
    await taken.close({ graceful: false });
    const err = await rejectsWith(
      ServerWorkers.listen(options({ port, module: empty })),
      'ERR_INVALID_ARGUMENT',
    );
    expect(err.message).toMatch(/no default export/);
    // Engine options are checked in the workers: their codes come through.
    await rejectsWith(
      ServerWorkers.listen(options({ port, encodings: ['yaml' as 'raw'] })),
      'ERR_INVALID_ARGUMENT',
    );
    const again = await ServerWorkers.listen(options({ port }));
    expect(again.port).toBe(port);
    await again.close();
  });
});

describe('server workers: bad input', () => {
  it('rejects bad options with ERR_INVALID_ARGUMENT before starting anything', async () => {
    await rejectsWith(ServerWorkers.listen(options({ workers: 0 })), 'ERR_INVALID_ARGUMENT');
    await rejectsWith(ServerWorkers.listen(options({ workers: 257 })), 'ERR_INVALID_ARGUMENT');
    await rejectsWith(ServerWorkers.listen(options({ module: '' })), 'ERR_INVALID_ARGUMENT');
    await rejectsWith(
      ServerWorkers.listen({ ...options(), keyLog: () => {} } as WorkerServerOptions),
      'ERR_INVALID_ARGUMENT',
    );
    await rejectsWith(
      ServerWorkers.listen({ ...options(), tcp: true } as WorkerServerOptions),
      'ERR_INVALID_ARGUMENT',
    );
    await rejectsWith(
      ServerWorkers.listen({ ...options(), bogus: 1 } as WorkerServerOptions),
      'ERR_INVALID_ARGUMENT',
    );
  });

  it.runIf(backend() === 'wasm')('needs the native addon', async () => {
    const err = await rejectsWith(ServerWorkers.listen(options()), 'ERR_BACKEND_UNAVAILABLE');
    expect(err.message).toMatch(/native addon/);
  });
});
