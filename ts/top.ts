// `quicwire top URL`: a live view of quicwire endpoints from their Prometheus metrics (what
// `collectMetrics` registers, and `quicwire serve --metrics` serves): per endpoint, open
// connections and streams, RTT, and rates of messages, requests, bytes and lost packets,
// refreshed in the terminal.

/** One scrape: per endpoint (its identity labels), each figure by name and qualifier. */
type Scrape = Map<string, Map<string, number>>;

/** Labels that say what a series counts, not whose it is. */
const QUALIFIERS = new Set(['direction', 'code', 'side', 'le']);

/** Parses the Prometheus text format, keeping the `quicwire_` series. */
export function parseMetrics(text: string, prefix = 'quicwire_'): Scrape {
  const scrape: Scrape = new Map();
  for (const line of text.split('\n')) {
    if (!line.startsWith(prefix)) continue;
    const m = /^(\w+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const [, name = '', labelText = '', value = ''] = m;
    const labels = [...labelText.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1], l[2]] as const);
    const who = labels
      .filter(([k]) => !QUALIFIERS.has(k as string))
      .map(([k, v]) => `${k}=${v}`)
      .join(' ');
    const what = [
      name.slice(prefix.length),
      ...labels.filter(([k]) => QUALIFIERS.has(k as string)).map(([, v]) => v),
    ].join(':');
    const figures = scrape.get(who) ?? new Map<string, number>();
    figures.set(what, Number(value));
    scrape.set(who, figures);
  }
  return scrape;
}

/** A figure summed over its qualifiers (say, errors of every code). */
function sum(figures: Map<string, number> | undefined, name: string): number {
  let total = 0;
  for (const [what, v] of figures ?? []) if (what === name || what.startsWith(`${name}:`)) total += v;
  return total;
}

/** The table of one refresh: `now` against `before`, `seconds` apart. */
export function render(before: Scrape, now: Scrape, seconds: number): string {
  const rate = (who: string, name: string) =>
    Math.max(0, (sum(now.get(who), name) - sum(before.get(who), name)) / seconds);
  const rows = [...now.keys()].sort().map((who) => {
    const f = now.get(who);
    return [
      who || '(no labels)',
      String(f?.get('connections') ?? 0),
      String(f?.get('streams_open') ?? 0),
      ((f?.get('rtt_seconds') ?? 0) * 1000).toFixed(2),
      rate(who, 'messages_total:in').toFixed(0),
      rate(who, 'messages_total:out').toFixed(0),
      rate(who, 'requests_total:in').toFixed(0),
      rate(who, 'requests_total:out').toFixed(0),
      (rate(who, 'bytes_total:in') / 1e6).toFixed(2),
      (rate(who, 'bytes_total:out') / 1e6).toFixed(2),
      rate(who, 'lost_packets_total').toFixed(1),
      String(sum(f, 'errors_total')),
    ];
  });
  const head = ['endpoint', 'conns', 'streams', 'rtt ms', 'msg/s in', 'msg/s out', 'req/s in', 'req/s out'];
  head.push('MB/s in', 'MB/s out', 'lost/s', 'errors');
  const table = [head, ...rows];
  const widths = head.map((_, i) => Math.max(...table.map((r) => (r[i] as string).length)));
  return table
    .map((r) =>
      r.map((cell, i) => (i === 0 ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0))).join('  '),
    )
    .join('\n');
}

/** Scrapes `url` every `intervalMs` and prints the table, `frames` times (or forever). */
export async function top(
  url: string,
  intervalMs: number,
  frames: number,
  write: (text: string) => void,
): Promise<void> {
  const get = async (): Promise<Scrape> => {
    const res = await fetch(url);
    if (!res.ok) throw new Error(`${url} answered ${res.status}`);
    return parseMetrics(await res.text());
  };
  let before = await get();
  let at = performance.now();
  for (let frame = 0; frames === 0 || frame < frames; frame++) {
    await new Promise((r) => setTimeout(r, intervalMs));
    const now = await get();
    const t = performance.now();
    // A terminal gets the table in place; a pipe gets one table after another.
    const clear = process.stdout.isTTY ? '\x1b[H\x1b[2J' : '';
    write(
      `${clear}quicwire top · ${url} · every ${intervalMs} ms\n\n${render(before, now, (t - at) / 1000)}\n`,
    );
    before = now;
    at = t;
  }
}
