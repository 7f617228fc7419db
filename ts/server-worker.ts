// One worker thread of `ServerWorkers.listen` (ts/server-workers.ts): a QuicServer on
// the socket the main thread bound for it, set up by the application's module, answering
// the main thread's stats and close.

import { parentPort, workerData } from 'node:worker_threads';
import { QuicServer, QuicwireError } from './index.js';
import { WORKER_SOCKET } from './server.js';
import type { ToMain, ToWorker, WorkerData, WorkerSetup } from './server-workers.js';
import type { ServerOptions } from './types.js';

const port = parentPort;
if (!port) throw new Error('quicwire: server-worker runs as a worker thread of ServerWorkers.listen');
const { options, socket, workers, module, data } = workerData as WorkerData;
const tell = (message: ToMain) => port.postMessage(message);

try {
  const setup = ((await import(module)) as { default?: unknown }).default;
  if (typeof setup !== 'function') {
    throw new QuicwireError(
      'ERR_INVALID_ARGUMENT',
      `${module} has no default export function to set up a server`,
    );
  }
  const server = await QuicServer.listen({ ...(options as ServerOptions), [WORKER_SOCKET]: socket });
  // Handlers set before the first await see the first packets (none is read in between).
  await (setup as WorkerSetup)(server, { worker: socket.index, workers, data });
  port.on('message', async (message: ToWorker) => {
    if (message.type === 'stats') {
      tell({ type: 'stats', id: message.id, stats: server.stats() });
    } else {
      await server.close(message.options);
      tell({ type: 'closed' });
    }
  });
  tell({ type: 'ready', port: server.port });
} catch (err) {
  const e = err as { code?: unknown; message?: unknown };
  tell({
    type: 'failed',
    code: typeof e?.code === 'string' ? e.code : undefined,
    message: String(e?.message ?? err),
  });
  port.close();
}
