// Prometheus metrics for clients and servers, through prom-client (an optional peer
// dependency: `npm install prom-client`), registered into the application's own registry.
// Traffic and path figures are read from each endpoint's stats when the registry is
// scraped; request durations and errors are counted as they happen (ts/connection.ts's
// Meter), and cost nothing on an endpoint no metrics watch.

import type { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Meter } from './connection.js';
import { invalidArgument, QuicwireError } from './errors.js';
import { checkKeys, checkObject } from './options.js';
import type { QuicServer } from './server.js';
import type { QuicTransport } from './transport.js';
import type { ConnectionStats } from './types.js';

export interface MetricsOptions {
  /** The registry to register in (default: prom-client's global `register`). */
  registry?: Registry;
  /** Put before every metric's name (default 'quicwire_'). */
  prefix?: string;
  /** Labels that tell this endpoint apart from others in the same registry, e.g.
   *  `{ name: 'api' }`. Every endpoint of a registry has the same label names. */
  labels?: Record<string, string>;
}

/** Request durations, in seconds: from 100 µs to 10 s. */
const BUCKETS = [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10];

interface Watched {
  endpoint: QuicTransport | QuicServer;
  labels: Record<string, string>;
  errors: Map<string, number>;
}

/** One registry's instruments (per prefix), and the endpoints they report. */
interface Instruments {
  labelNames: string[];
  watched: Set<Watched>;
  durations: Histogram;
}

const byRegistry = new WeakMap<Registry, Map<string, Instruments>>();

/**
 * Registers `endpoint`'s metrics (a `QuicTransport` has role="client", a `QuicServer`
 * role="server"): open connections and streams, messages, requests and bytes each way, lost
 * packets, RTT, congestion window, errors by code, and request durations. Returns a
 * function that stops watching it.
 */
export async function collectMetrics(
  endpoint: QuicTransport | QuicServer,
  options: MetricsOptions = {},
): Promise<() => void> {
  checkObject('collectMetrics options', options);
  checkKeys('collectMetrics', options, ['registry', 'prefix', 'labels']);
  if (endpoint.meter) throw invalidArgument('metrics already watch this endpoint');
  const labels = { ...(options.labels ?? {}), role: endpoint.isServer ? 'server' : 'client' };
  if (Object.values(labels).some((v) => typeof v !== 'string')) {
    throw invalidArgument('labels must be strings');
  }
  const prom = await promClient();
  const registry = options.registry ?? prom.register;
  const prefix = options.prefix ?? 'quicwire_';
  const labelNames = Object.keys(labels).sort();
  const perPrefix = byRegistry.get(registry) ?? new Map<string, Instruments>();
  byRegistry.set(registry, perPrefix);
  let instruments = perPrefix.get(prefix);
  if (!instruments) {
    instruments = instrument(prom, registry, prefix, labelNames);
    perPrefix.set(prefix, instruments);
  } else if (instruments.labelNames.join() !== labelNames.join()) {
    throw invalidArgument(
      `every endpoint in one registry has the same label names: ${instruments.labelNames.join(', ')}`,
    );
  }
  const watched: Watched = { endpoint, labels, errors: new Map() };
  const { durations } = instruments;
  const count = (code: string) => watched.errors.set(code, (watched.errors.get(code) ?? 0) + 1);
  const meter: Meter = {
    requested(seconds, code) {
      durations.observe({ ...labels, side: 'made' }, seconds);
      if (code) count(code);
    },
    answered(seconds, code) {
      durations.observe({ ...labels, side: 'answered' }, seconds);
      if (code) count(code);
    },
    failed: count,
  };
  endpoint.meter = meter;
  instruments.watched.add(watched);
  const all = instruments.watched;
  return () => {
    all.delete(watched);
    if (endpoint.meter === meter) endpoint.meter = undefined;
  };
}

type PromClient = typeof import('prom-client');

async function promClient(): Promise<PromClient> {
  try {
    return await import('prom-client');
  } catch (err) {
    throw new QuicwireError(
      'ERR_INVALID_ARGUMENT',
      'metrics need prom-client, an optional peer dependency: npm install prom-client',
      { cause: err },
    );
  }
}

/** What an endpoint did and has: open connections' figures, and what ended ones did. */
function figures(endpoint: QuicTransport | QuicServer): {
  open: number;
  totals: ConnectionStats;
  ended: ConnectionStats;
} {
  if ('getPoolStats' in endpoint) {
    const s = endpoint.getPoolStats();
    return { open: s.active + s.idle, totals: s.totals, ended: s.ended };
  }
  const s = endpoint.stats();
  return { open: s.connections, totals: s.totals, ended: s.ended };
}

function instrument(prom: PromClient, registry: Registry, prefix: string, labelNames: string[]): Instruments {
  const watched = new Set<Watched>();
  const registers = [registry];
  /** Each watched endpoint's figures, read once per scrape. */
  const each = (f: (w: Watched, s: ReturnType<typeof figures>) => void) => {
    for (const w of watched) {
      try {
        f(w, figures(w.endpoint));
      } catch {
        // A closed endpoint has no stats any more: it reports nothing.
      }
    }
  };
  const gauge = (name: string, help: string, value: (s: ReturnType<typeof figures>) => number) =>
    new prom.Gauge({
      name: `${prefix}${name}`,
      help,
      labelNames,
      registers,
      collect(this: Gauge) {
        this.reset();
        each((w, s) => this.set(w.labels, value(s)));
      },
    });
  /** A counter of what open and ended connections did, in and out. */
  const both = (name: string, help: string, key: 'messages' | 'requests' | 'bytes') =>
    new prom.Counter({
      name: `${prefix}${name}`,
      help,
      labelNames: [...labelNames, 'direction'],
      registers,
      collect(this: Counter) {
        this.reset();
        each((w, s) => {
          for (const direction of ['in', 'out'] as const) {
            const field = `${key}${direction === 'in' ? 'In' : 'Out'}` as const;
            this.inc({ ...w.labels, direction }, s.totals[field] + s.ended[field]);
          }
        });
      },
    });
  gauge('connections', 'Open connections', (s) => s.open);
  gauge('streams_open', 'Streams open now: channels, and requests in flight', (s) => s.totals.streamsOpen);
  gauge(
    'rtt_seconds',
    'The highest smoothed round-trip time among open connections',
    (s) => s.totals.rttMs / 1000,
  );
  gauge(
    'congestion_window_bytes',
    'Congestion windows of the open connections, added up',
    (s) => s.totals.cwnd,
  );
  both('messages_total', 'Messages sent (out) and received (in)', 'messages');
  both('requests_total', 'Requests made (out) and answered (in)', 'requests');
  both('bytes_total', 'Message, request and answer bytes sent (out) and received (in)', 'bytes');
  new prom.Counter({
    name: `${prefix}lost_packets_total`,
    help: 'Packets QUIC declared lost (and sent again)',
    labelNames,
    registers,
    collect(this: Counter) {
      this.reset();
      each((w, s) => this.inc(w.labels, s.totals.lostPackets + s.ended.lostPackets));
    },
  });
  new prom.Counter({
    name: `${prefix}errors_total`,
    help: 'Requests that failed, answers that failed or could not be sent, by error code',
    labelNames: [...labelNames, 'code'],
    registers,
    collect(this: Counter) {
      this.reset();
      for (const w of watched) {
        for (const [code, n] of w.errors) this.inc({ ...w.labels, code }, n);
      }
    },
  });
  const durations = new prom.Histogram({
    name: `${prefix}request_duration_seconds`,
    help: 'Requests this side made (side="made": until the answer) and answered (side="answered": in the handler)',
    labelNames: [...labelNames, 'side'],
    buckets: BUCKETS,
    registers,
  });
  return { labelNames, watched, durations };
}
