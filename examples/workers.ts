// Request/response workers: a coordinator spreads tasks over worker processes, each a
// QuicServer, through one pooled connection per worker. Run: `npx tsx examples/workers.ts`.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createInterface } from 'node:readline';
import { generateDevCert, initWasm, QuicServer, QuicTransport } from 'quicwire';

interface Task {
  input: string;
  rounds: number;
}

await initWasm(); // a no-op on the native backend

/** What the coordinator saw (for the example's test). */
export let summary: { digests: string[]; perWorker: number[]; created: number } | undefined;

if (process.argv.includes('--worker')) {
  // A worker: answer each task with a SHA-256 chain of its input.
  const server = await QuicServer.listen({
    host: '127.0.0.1',
    port: 0,
    cert: process.env.WORKER_CERT as string,
    key: process.env.WORKER_KEY as string,
  });
  server.onRequest((msg) => {
    const { input, rounds } = msg as Task;
    let digest = input;
    for (let i = 0; i < rounds; i++) digest = createHash('sha256').update(digest).digest('hex');
    return { digest, worker: process.pid };
  });
  console.log(`READY ${server.port}`);
  process.once('SIGTERM', () => void server.close().then(() => process.exit(0)));
} else {
  const WORKERS = 3;
  const TASKS = 60;
  const { cert, key } = generateDevCert();
  // Each worker is this file again, run by tsx, and prints its port when it listens.
  const workers = await Promise.all(
    Array.from({ length: WORKERS }, () => {
      const child = spawn(process.execPath, ['--import', 'tsx', import.meta.filename, '--worker'], {
        env: { ...process.env, WORKER_CERT: cert, WORKER_KEY: key },
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      return new Promise<{ child: typeof child; port: number }>((resolve, reject) => {
        child.once('exit', (code) => reject(new Error(`worker exited with ${code}`)));
        createInterface({ input: child.stdout }).once('line', (line) => {
          resolve({ child, port: Number(line.split(' ')[1]) });
        });
      });
    }),
  );

  const t = new QuicTransport({ ca: cert });
  const started = performance.now();
  const results = await Promise.all(
    Array.from({ length: TASKS }, (_, i) => {
      const { port } = workers[i % WORKERS] as { port: number };
      // "host:port" targets: the pool dials each worker once and reuses the connection.
      return t.request(`127.0.0.1:${port}`, { input: `task-${i}`, rounds: 2000 } satisfies Task) as Promise<{
        digest: string;
        worker: number;
      }>;
    }),
  );
  const ms = performance.now() - started;
  const perWorker = new Map<number, number>();
  for (const r of results) perWorker.set(r.worker, (perWorker.get(r.worker) ?? 0) + 1);
  const pool = t.getPoolStats();
  console.log(`${TASKS} tasks over ${WORKERS} workers in ${ms.toFixed(0)} ms`);
  console.log(
    `per worker: ${[...perWorker.values()].join(', ')}; connections dialed ${pool.created}, reused ${pool.reused}`,
  );

  await t.close();
  for (const w of workers) {
    w.child.removeAllListeners('exit');
    w.child.kill('SIGTERM');
  }
  summary = {
    digests: results.map((r) => r.digest),
    perWorker: [...perWorker.values()],
    created: pool.created,
  };
}
