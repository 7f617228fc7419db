// A horizontal bar chart as SVG: one bar per transport, the value printed at its end.

export interface Bar {
  label: string;
  value: number;
  highlight?: boolean;
}

const xml = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');

export function barChart(title: string, unit: string, bars: Bar[], note: string): string {
  const rowH = 26;
  const left = 210;
  const width = 760;
  const barMax = width - left - 110;
  const top = 48;
  const height = top + bars.length * rowH + 36;
  const max = Math.max(...bars.map((b) => b.value), 1e-9);
  const fmt = (v: number) => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));
  const rows = bars.map((b, i) => {
    const y = top + i * rowH;
    const w = Math.max(1, (b.value / max) * barMax);
    const fill = b.highlight ? '#2f6fde' : '#9aa5b1';
    return [
      `<text x="${left - 8}" y="${y + 17}" text-anchor="end">${xml(b.label)}</text>`,
      `<rect x="${left}" y="${y + 4}" width="${w.toFixed(1)}" height="${rowH - 8}" fill="${fill}" rx="2"/>`,
      `<text x="${left + w + 6}" y="${y + 17}">${fmt(b.value)} ${xml(unit)}</text>`,
    ].join('');
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, sans-serif" font-size="13">
<rect width="100%" height="100%" fill="#fff"/>
<text x="16" y="28" font-size="16" font-weight="600">${xml(title)}</text>
${rows.join('\n')}
<text x="16" y="${height - 12}" font-size="11" fill="#555">${xml(note)}</text>
</svg>
`;
}
