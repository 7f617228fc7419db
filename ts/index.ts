// quicwire for Node.js (and Deno and Bun): the native addon, or the wasm engine over UDP.

import { nodePlatform } from './node.js';
import { usePlatform } from './platform.js';

usePlatform(nodePlatform);

export * from './api.js';
export { collectMetrics, type MetricsOptions } from './metrics.js';
export {
  ServerWorkers,
  type WorkerExitHandler,
  type WorkerInfo,
  type WorkerServerOptions,
  type WorkerSetup,
} from './server-workers.js';
