// A server on every core: `ServerWorkers.listen` runs one QuicServer per worker thread,
// all on one UDP port. The main thread binds the port's sockets as one SO_REUSEPORT group
// whose routing program sends each packet to the worker owning its connection (by the first
// byte of the connection ID its engine chose), so a connection stays on its worker even
// when the client's address changes. Each worker imports the application's module, whose
// default export sets up that worker's server (handlers, as on any QuicServer).

import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { getHub } from './backend.js';
import type { WorkerSocket } from './engine.js';
import { type ErrorCode, fromEngine, invalidArgument, QuicwireError } from './errors.js';
import { ERROR_CODES } from './layout.js';
import { checkInteger, checkKeys, checkObject, checkString } from './options.js';
import { type QuicServer, SERVER_KEYS } from './server.js';
import type { CloseOptions, ServerOptions, ServerStats } from './types.js';

export interface WorkerServerOptions extends Omit<ServerOptions, 'keyLog' | 'qlog' | 'tcp'> {
  /** How many worker threads serve the port (1 to 256; the machine's cores is a good
   *  start: `os.availableParallelism()`). */
  workers: number;
  /** The module each worker imports: its default export (a `WorkerSetup`) sets up that
   *  worker's server. A path or a file URL. */
  module: string | URL;
  /** Handed to every worker's setup (copied with the structured clone algorithm). */
  data?: unknown;
}

export interface WorkerInfo {
  /** This worker's index, from 0. */
  worker: number;
  /** How many workers serve the port. */
  workers: number;
  /** `WorkerServerOptions.data`. */
  data: unknown;
}

/** A worker module's default export: sets up the worker's server. Handlers set before its
 *  first `await` see the first packets. */
export type WorkerSetup = (server: QuicServer, info: WorkerInfo) => void | Promise<void>;

/** A worker's end: null when it closed or was told to, else the error that ended it. */
export type WorkerExitHandler = (worker: number, error: Error | null) => void;

/** @internal What a worker thread starts with. */
export interface WorkerData {
  entry: string;
  tsx: string | undefined;
  options: Omit<WorkerServerOptions, 'workers' | 'module' | 'data'>;
  socket: WorkerSocket;
  workers: number;
  module: string;
  data: unknown;
}

/** @internal Messages between the main thread and a worker. */
export type ToWorker = { type: 'stats'; id: number } | { type: 'close'; options: CloseOptions };
export type ToMain =
  | { type: 'ready'; port: number }
  | { type: 'failed'; code: string | undefined; message: string }
  | { type: 'stats'; id: number; stats: ServerStats }
  | { type: 'closed' };

/** Each thread's first code: registers tsx when a TypeScript file is to load (Node 20's
 *  worker threads take no loader hooks from their parent), then runs the worker script. */
const BOOT = `const { workerData } = require('node:worker_threads');
(async () => {
  if (workerData.tsx) (await import(workerData.tsx)).register();
  await import(workerData.entry);
})();`;

/** The worker script, next to this file (compiled .js, or .ts in a source checkout). */
const ENTRY = new URL(`./server-worker${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url)
  .href;

/** tsx's loader to register in each thread when a module to load is TypeScript. */
function typescriptLoader(module: string): string | undefined {
  if (![ENTRY, module].some((url) => /\.[mc]?tsx?$/.test(url))) return undefined;
  try {
    return import.meta.resolve('tsx/esm/api');
  } catch (err) {
    throw new QuicwireError(
      'ERR_INVALID_ARGUMENT',
      `${module} is TypeScript, which worker threads load through tsx: install tsx, or compile the module`,
      { cause: err },
    );
  }
}

/** Servers on worker threads sharing one UDP port (see `ServerWorkers.listen`). */
export class ServerWorkers {
  /** The bound address and port (the real one when `port: 0` was asked). */
  readonly host: string;
  readonly port: number;
  readonly #threads: Worker[];
  #exitHandler: WorkerExitHandler | undefined;
  #closing = false;
  #nextStats = 0;

  private constructor(host: string, port: number, threads: Worker[]) {
    this.host = host;
    this.port = port;
    this.#threads = threads;
    threads.forEach((thread, i) => {
      let error: Error | null = null;
      thread.on('error', (err) => {
        error = err;
      });
      thread.on('exit', () => this.#exited(i, error));
    });
  }

  /** Starts `options.workers` threads, each with a QuicServer on the shared port, set up by
   *  `options.module`; resolves once all of them serve. */
  static async listen(options: WorkerServerOptions): Promise<ServerWorkers> {
    checkObject('ServerWorkers.listen options', options);
    const { workers, module, data, ...server } = options;
    const count = checkInteger('workers', workers, 256);
    if (count < 1) throw invalidArgument(`workers must be between 1 and 256, got ${count}`);
    const href = moduleHref(module);
    const tsx = typescriptLoader(href);
    for (const key of ['keyLog', 'qlog'] as const) {
      if (key in server)
        throw invalidArgument(`${key} cannot reach worker threads: set it up in the worker module`);
    }
    checkKeys('ServerWorkers.listen', options, [...SERVER_KEYS, 'workers', 'module', 'data']);
    if ((server as ServerOptions).tcp) {
      throw invalidArgument('tcp cannot be shared by workers yet: QUIC over TCP needs a QuicServer');
    }
    const host = checkString('host', server.host ?? '127.0.0.1');
    const wanted = checkInteger('port', server.port ?? 0, 0xffff);
    const engine = getHub().engine;
    let group: { group: number; port: number };
    try {
      group = engine.bindWorkers(host, wanted, count);
    } catch (err) {
      throw fromEngine(err);
    }
    const threads: Worker[] = [];
    try {
      for (let index = 0; index < count; index++) {
        const start: WorkerData = {
          entry: ENTRY,
          tsx,
          options: { ...server, port: group.port },
          socket: { group: group.group, index },
          workers: count,
          module: href,
          data,
        };
        threads.push(new Worker(BOOT, { eval: true, workerData: start }));
      }
      await Promise.all(threads.map((thread, index) => started(thread, index)));
    } catch (err) {
      await Promise.all(threads.map((t) => t.terminate()));
      throw err;
    } finally {
      engine.releaseWorkers(group.group);
    }
    return new ServerWorkers(host, group.port, threads);
  }

  /** How many workers serve. */
  get workers(): number {
    return this.#threads.length;
  }

  /** Each running worker's server stats, by worker index (null for one that ended). */
  async stats(): Promise<(ServerStats | null)[]> {
    return Promise.all(
      this.#threads.map(
        (thread) =>
          new Promise<ServerStats | null>((resolve) => {
            if (ended(thread)) return resolve(null);
            const id = ++this.#nextStats;
            const onMessage = (m: ToMain) => {
              if (m.type !== 'stats' || m.id !== id) return;
              thread.off('message', onMessage).off('exit', onExit);
              resolve(m.stats);
            };
            const onExit = () => {
              thread.off('message', onMessage);
              resolve(null);
            };
            thread.on('message', onMessage).once('exit', onExit);
            try {
              thread.postMessage({ type: 'stats', id } satisfies ToWorker);
            } catch {
              onExit();
            }
          }),
      ),
    );
  }

  /** Called when a worker ends. Without a handler, a worker that fails throws its error
   *  here, as an uncaught exception (as a `Worker` with no 'error' listener does). */
  onWorkerExit(handler: WorkerExitHandler): this {
    if (typeof handler !== 'function') throw invalidArgument('onWorkerExit takes a function');
    this.#exitHandler = handler;
    return this;
  }

  /** Closes every worker's server (as `QuicServer.close`, graceful by default) and ends
   *  the threads (whatever else the module left running in them, timers or sockets, too). */
  async close(options: CloseOptions = {}): Promise<void> {
    checkObject('close options', options);
    checkKeys('close', options, ['graceful', 'timeoutMs']);
    if (this.#closing) return;
    this.#closing = true;
    await Promise.all(
      this.#threads.map(
        (thread) =>
          new Promise<void>((resolve) => {
            if (ended(thread)) return resolve();
            thread.once('exit', () => resolve());
            thread.on('message', (m: ToMain) => {
              if (m.type === 'closed') void thread.terminate();
            });
            try {
              thread.postMessage({ type: 'close', options } satisfies ToWorker);
            } catch {
              resolve();
            }
          }),
      ),
    );
  }

  #exited(worker: number, error: Error | null): void {
    if (this.#exitHandler) this.#exitHandler(worker, error);
    else if (error && !this.#closing) throw error;
  }
}

/** Resolves once worker `index` serves; rejects with why it could not. */
function started(thread: Worker, index: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const fail = (code: ErrorCode, message: string, cause?: unknown) =>
      reject(new QuicwireError(code, `server worker ${index} did not start: ${message}`, { cause }));
    thread.once('message', (m: ToMain) => {
      if (m.type === 'ready') resolve();
      else if (m.type === 'failed') fail(knownCode(m.code), m.message);
    });
    thread.once('error', (err) => fail('ERR_INTERNAL', err.message, err));
    thread.once('exit', (code) => fail('ERR_INTERNAL', `its thread exited with ${code}`));
  });
}

/** Whether a worker's thread has stopped (its id is -1 from then on). */
function ended(thread: Worker): boolean {
  return thread.threadId === -1;
}

function knownCode(code: string | undefined): ErrorCode {
  return (ERROR_CODES as readonly string[]).includes(code ?? '')
    ? (code as ErrorCode)
    : 'ERR_INVALID_ARGUMENT';
}

/** The module as a URL to import: a URL as it is, a path from the working directory. */
function moduleHref(module: unknown): string {
  if (module instanceof URL) return module.href;
  if (typeof module !== 'string' || module === '') {
    throw invalidArgument('module must be a path or a file URL of the worker setup module');
  }
  return module.startsWith('file:') ? module : pathToFileURL(resolve(module)).href;
}
