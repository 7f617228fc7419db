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
  'quicwire-native newreno': () => quicwire('native', { congestionControl: 'newreno' }),
  'quicwire-native bbr': () => quicwire('native', { congestionControl: 'bbr' }),
  'node-tls': () => nodeTls,
  ws: () => ws,
  'matrixai-quic': () => matrixaiQuic,
  'libp2p-quic': () => libp2pQuic,
};

export function transport(name: string): Transport {
  const make = transports[name];
  if (!make) throw new Error(`unknown transport ${name}; known: ${Object.keys(transports).join(', ')}`);
  return make();
}
