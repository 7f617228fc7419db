// Every transport the benchmark knows, by name. A transport is one file in adapters/.
import { libp2pQuic } from './adapters/libp2p-quic.js';
import { matrixaiQuic } from './adapters/matrixai-quic.js';
import { nodeTls } from './adapters/node-tls.js';
import { quicwire } from './adapters/quicwire.js';
import { ws } from './adapters/ws.js';
import type { Transport } from './types.js';

export const transports: Record<string, () => Transport> = {
  'quicwire-native': () => quicwire('native'),
  'quicwire-wasm': () => quicwire('wasm'),
  'quicwire-native msgpack': () => quicwire('native', { encoding: 'msgpack' }),
  'quicwire-native json': () => quicwire('native', { encoding: 'json' }),
  'node-tls': () => nodeTls,
  ws: () => ws,
  'matrixai-quic': () => matrixaiQuic,
  'libp2p-quic': () => libp2pQuic,
};

/** Rows of `bench:loss` only: the other congestion controllers (quicwire-native runs CUBIC). */
export const controllers: Record<string, () => Transport> = {
  'quicwire-native newreno': () => quicwire('native', { congestionControl: 'newreno' }),
  'quicwire-native bbr': () => quicwire('native', { congestionControl: 'bbr' }),
};

export function transport(name: string): Transport {
  const make = transports[name] ?? controllers[name];
  if (!make) {
    const known = [...Object.keys(transports), ...Object.keys(controllers)];
    throw new Error(`unknown transport ${name}; known: ${known.join(', ')}`);
  }
  return make();
}
