// The native backend: loads the napi addon built from crates/quicwire-node.

import { createRequire } from 'node:module';
import type { Engine } from './engine.js';
import { QuicwireError } from './errors.js';

type Addon = Omit<Engine, 'name'>;

/** Loads the addon, or throws ERR_BACKEND_UNAVAILABLE saying what was tried. */
export function loadNative(): Engine {
  const require = createRequire(import.meta.url);
  const tried = ['../crates/quicwire-node/index.cjs'];
  let addon: Addon;
  try {
    addon = require(tried[0] as string) as Addon;
  } catch (err) {
    throw new QuicwireError(
      'ERR_BACKEND_UNAVAILABLE',
      `the native quicwire addon did not load (tried ${tried.join(', ')}): ${String(err)}. ` +
        'Build it with `npm run build:native`.',
      { cause: err },
    );
  }
  return { name: 'native', ...addon };
}
