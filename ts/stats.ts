// The engine's figures (quicwire_engine::abi's stats JSON) in the facade's shapes.

import type { ConnectionStats, PoolStats, ServerStats } from './types.js';

/** What an engine reports of itself. */
export interface EngineFigures {
  created: number;
  reused: number;
  evicted: number;
  failed: number;
  accepted: number;
  rejected: number;
  refused: number;
  retried: number;
  totals: ConnectionStats;
  ended: ConnectionStats;
  connections: (ConnectionStats & { idle: boolean })[];
}

export function poolStats(s: EngineFigures): Omit<PoolStats, 'answersFailed'> {
  const idle = s.connections.filter((c) => c.idle).length;
  return {
    active: s.connections.length - idle,
    idle,
    created: s.created,
    reused: s.reused,
    evicted: s.evicted,
    failed: s.failed,
    totals: s.totals,
    ended: s.ended,
    connections: s.connections.map(({ idle: _, ...c }) => c).sort((a, b) => a.peer.localeCompare(b.peer)),
  };
}

export function serverStats(s: EngineFigures): Omit<ServerStats, 'answersFailed'> {
  return {
    connections: s.connections.length,
    accepted: s.accepted,
    rejected: s.rejected,
    refused: s.refused,
    retried: s.retried,
    totals: s.totals,
    ended: s.ended,
  };
}
