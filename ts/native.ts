// The native backend: the napi addon built from crates/quicwire-node. Its generated loader
// (index.cjs) looks for a local build next to itself (a source checkout), then for the
// platform package (quicwire-linux-x64-gnu and friends, installed as optional dependencies);
// libc is read from /usr/bin/ldd before falling back to process.report.

import { createRequire } from 'node:module';
import type { Engine } from './engine.js';
import { QuicwireError } from './errors.js';

type Addon = Omit<Engine, 'name'>;

let loaded: Engine | undefined;

/** Loads the addon, or throws ERR_BACKEND_UNAVAILABLE saying everything it tried. */
export function loadNative(): Engine {
  if (loaded) return loaded;
  const require = createRequire(import.meta.url);
  let addon: Addon;
  try {
    addon = require('../crates/quicwire-node/index.cjs') as Addon;
  } catch (err) {
    const tried = attempts(err);
    throw new QuicwireError(
      'ERR_BACKEND_UNAVAILABLE',
      `no native quicwire addon loaded for ${process.platform}-${process.arch}; tried:\n` +
        tried.map((t) => `  - ${t}`).join('\n'),
      { cause: err },
    );
  }
  loaded = { name: 'native', ...addon };
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
