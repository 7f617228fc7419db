// The worker module of `npm run bench:workers`: each worker's server echoes raw requests,
// after `data.workUs` microseconds of CPU work (a busy loop, standing in for what an
// application's handler does).

import type { QuicServer, WorkerInfo } from '../dist/index.js';

export default function setup(server: QuicServer, { data }: WorkerInfo): void {
  server.onRequest(echo((data as { workUs: number }).workUs));
}

/** A raw echo handler that first keeps the CPU busy for `workUs` µs. */
export function echo(workUs: number): (body: unknown) => unknown {
  if (workUs <= 0) return (body) => body;
  return (body) => {
    const until = performance.now() + workUs / 1000;
    while (performance.now() < until) {}
    return body;
  };
}
