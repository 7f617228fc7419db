// The native backend: the napi addon built from crates/quicwire-node, the same engine as
// the wasm one compiled natively, which reads its UDP socket and runs its timer on Node's
// own event loop (crates/quicwire-node/src/driver.rs). Its generated loader (index.cjs)
// looks for a local build next to itself (a source checkout), then for the platform package
// (quicwire-linux-x64-gnu and friends, installed as optional dependencies); libc is read
// from /usr/bin/ldd before falling back to process.report.

import { createRequire } from 'node:module';
import type { Engine } from './engine.js';
import { EngineBackend, type EngineIo, type Shell, type ShellEngine } from './engine-backend.js';
import { fromEngine, QuicwireError } from './errors.js';
import { platform } from './platform.js';

/** The addon's engine: the shared engine API plus its own socket and timer. */
interface NativeEngine extends ShellEngine {
  bind(host: string, port: number, onEvents: () => void): number;
  flush(): void;
  shutdown(): void;
}

/** The engine does its own I/O: this binds its sockets and tells it when to send. */
class NativeIo implements EngineIo {
  readonly #ports: { 4?: number; 6?: number } = {};

  constructor(
    readonly engine: NativeEngine,
    readonly afterIo: () => void,
  ) {}

  async socket(family: 4 | 6, host: string | undefined, port: number): Promise<number> {
    if (this.#ports[family] === undefined) {
      try {
        this.#ports[family] = this.engine.bind(host ?? (family === 6 ? '::' : '0.0.0.0'), port, this.afterIo);
      } catch (err) {
        throw fromEngine(err);
      }
    }
    return this.#ports[family] as number;
  }

  step(): void {
    this.engine.flush();
  }

  close(): void {
    this.engine.shutdown();
  }
}

let loaded: Engine | undefined;

/** Loads the addon, or throws ERR_BACKEND_UNAVAILABLE saying everything it tried. */
export function loadNative(): Engine {
  if (loaded) return loaded;
  const require = createRequire(import.meta.url);
  let addon: Shell<NativeEngine>;
  try {
    addon = require('../crates/quicwire-node/index.cjs') as Shell<NativeEngine>;
  } catch (err) {
    const tried = attempts(err);
    throw new QuicwireError(
      'ERR_BACKEND_UNAVAILABLE',
      `no native quicwire addon loaded for ${process.platform}-${process.arch}; tried:\n` +
        tried.map((t) => `  - ${t}`).join('\n'),
      { cause: err },
    );
  }
  loaded = new EngineBackend<NativeEngine>(
    'native',
    addon,
    (engine, afterIo) => new NativeIo(engine, afterIo),
    (host) => platform().network.resolve(host),
  );
  return loaded;
}

/** The loader's error and its cause chain (one entry per candidate it tried), oldest first. */
function attempts(err: unknown): string[] {
  const out: string[] = [];
  let e: unknown = err;
  while (e instanceof Error && out.length < 20) {
    out.push(e.message.split('\n')[0] as string);
    e = e.cause;
  }
  const [summary, ...causes] = out;
  return causes.length > 0 ? causes.reverse() : [summary ?? String(err)];
}
