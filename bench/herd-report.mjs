// Output of the herd benchmark: aligned Markdown tables and a hand-written SVG chart.

/**
 * A Markdown table padded so that it also reads well in a terminal. The first column is
 * left-aligned, the others right-aligned.
 *
 * @param {string[]} headers
 * @param {string[][]} rows
 */
export function markdownTable(headers, rows) {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (/** @type {string[]} */ cells) =>
    `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join(" | ")} |`;
  const rule = `|${widths.map((w, i) => (i === 0 ? "-".repeat(w + 2) : `${"-".repeat(w + 1)}:`)).join("|")}|`;
  return [line(headers), rule, ...rows.map(line)].join("\n");
}

/** One colour and marker per backend, the same in every chart. */
export const STYLE = {
  none: { color: "#d62728", label: "none (SDK alone)", dash: "" },
  memory: { color: "#ff7f0e", label: "memory", dash: "6 4" },
  file: { color: "#1f77b4", label: "file", dash: "" },
  sqlite: { color: "#2ca02c", label: "sqlite", dash: "" },
  redis: { color: "#9467bd", label: "keyv + redis", dash: "" },
};

/** @param {string} text */
const esc = (text) => text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

/** "Nice" upper bound and step for a linear axis. */
function niceScale(/** @type {number} */ max) {
  const raw = max / 5;
  const magnitude = 10 ** Math.floor(Math.log10(raw || 1));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= raw) ?? raw;
  return { top: Math.ceil(max / step) * step || step, step };
}

/**
 * One panel: x = process counts (evenly spaced), y = a value per backend.
 *
 * @param {object} panel
 * @param {number} panel.x0 left edge of the panel
 * @param {number} panel.y0 top edge
 * @param {number} panel.width
 * @param {number} panel.height
 * @param {string} panel.title
 * @param {string} panel.yLabel
 * @param {boolean} panel.log log-10 y axis
 * @param {number[]} panel.counts
 * @param {Array<{ backend: string, values: number[] }>} panel.series
 * @param {(v: number) => string} panel.format tick label
 */
function chartPanel({ x0, y0, width, height, title, yLabel, log, counts, series, format }) {
  const left = x0 + 70;
  const right = x0 + width - 15;
  const top = y0 + 40;
  const bottom = y0 + height - 55;
  const values = series.flatMap((s) => s.values).filter((v) => Number.isFinite(v));
  const out = [];
  out.push(`<text x="${(left + right) / 2}" y="${y0 + 20}" class="title">${esc(title)}</text>`);

  /** @type {number[]} */
  let ticks;
  /** @type {(v: number) => number} */
  let yOf;
  if (log) {
    const maxExp = Math.max(1, Math.ceil(Math.log10(Math.max(1, ...values))));
    ticks = Array.from({ length: maxExp + 1 }, (_, i) => 10 ** i);
    yOf = (v) => bottom - (Math.log10(Math.max(1, v)) / maxExp) * (bottom - top);
  } else {
    const { top: max, step } = niceScale(Math.max(1, ...values));
    ticks = Array.from({ length: Math.round(max / step) + 1 }, (_, i) => i * step);
    yOf = (v) => bottom - (v / max) * (bottom - top);
  }
  const xOf = (/** @type {number} */ i) =>
    left + 20 + (i / Math.max(1, counts.length - 1)) * (right - left - 40);

  for (const t of ticks) {
    const y = yOf(t).toFixed(1);
    out.push(`<line x1="${left}" y1="${y}" x2="${right}" y2="${y}" class="grid"/>`);
    out.push(`<text x="${left - 8}" y="${y}" class="ytick">${esc(format(t))}</text>`);
  }
  counts.forEach((n, i) => {
    const x = xOf(i).toFixed(1);
    out.push(`<line x1="${x}" y1="${bottom}" x2="${x}" y2="${bottom + 5}" class="axis"/>`);
    out.push(`<text x="${x}" y="${bottom + 20}" class="xtick">${n}</text>`);
  });
  out.push(`<line x1="${left}" y1="${bottom}" x2="${right}" y2="${bottom}" class="axis"/>`);
  out.push(`<line x1="${left}" y1="${top}" x2="${left}" y2="${bottom}" class="axis"/>`);
  out.push(
    `<text x="${(left + right) / 2}" y="${bottom + 42}" class="label">processes started at once (cold cache)</text>`,
  );
  const midY = (top + bottom) / 2;
  out.push(
    `<text x="${x0 + 18}" y="${midY}" class="label" transform="rotate(-90 ${x0 + 18} ${midY})">${esc(yLabel)}</text>`,
  );

  if (log) {
    // Lines that lie on top of each other at one fetch get a label instead of a guess.
    const flat = series.filter((s) => s.values.length > 0 && s.values.every((v) => v === 1));
    if (flat.length > 1) {
      const names = flat.map((s) => STYLE[/** @type {keyof typeof STYLE} */ (s.backend)].label).join(", ");
      out.push(
        // Top left: the one corner no line reaches (fetches grow with the process count).
        `<text x="${left + 12}" y="${top + 14}" class="note">1 fetch at every size: ${esc(names)}</text>`,
      );
    }
  }
  // Later lines are drawn thinner on top of earlier ones, so lines that coincide stay visible.
  for (const [index, s] of series.entries()) {
    const style = STYLE[/** @type {keyof typeof STYLE} */ (s.backend)];
    const strokeWidth = Math.max(1.5, 6 - index * 1.1);
    const radius = Math.max(3, 7 - index);
    const points = s.values
      .map((v, i) => (Number.isFinite(v) ? `${xOf(i).toFixed(1)},${yOf(v).toFixed(1)}` : undefined))
      .filter(Boolean);
    out.push(
      `<polyline points="${points.join(" ")}" fill="none" stroke="${style.color}" stroke-width="${strokeWidth.toFixed(1)}"${style.dash ? ` stroke-dasharray="${style.dash}"` : ""}/>`,
    );
    for (const p of points) {
      const [x, y] = /** @type {string} */ (p).split(",");
      out.push(
        `<circle cx="${x}" cy="${y}" r="${radius}" fill="${style.color}" stroke="#fff" stroke-width="1"/>`,
      );
    }
  }
  return out.join("\n");
}

/**
 * The cold-herd chart: source fetches (log scale) and p99 time to first credential,
 * against the number of processes, one line per backend.
 *
 * @param {number[]} counts
 * @param {Array<{ backend: string, fetches: number[], p99: number[] }>} series
 * @param {string} subtitle
 * @param {string} [footnote] a second line under the charts, e.g. about failures
 */
export function herdSvg(counts, series, subtitle, footnote = "") {
  const width = 1000;
  const height = 490;
  const panelWidth = width / 2;
  const panelHeight = height - 88;
  const legendY = height - 22;
  const legend = series
    .map((s, i) => {
      const style = STYLE[/** @type {keyof typeof STYLE} */ (s.backend)];
      const x = 60 + i * 185;
      return (
        `<line x1="${x}" y1="${legendY}" x2="${x + 28}" y2="${legendY}" stroke="${style.color}" stroke-width="3"${style.dash ? ` stroke-dasharray="${style.dash}"` : ""}/>` +
        `<circle cx="${x + 14}" cy="${legendY}" r="4" fill="${style.color}"/>` +
        `<text x="${x + 36}" y="${legendY + 4}" class="legend">${esc(style.label)}</text>`
      );
    })
    .join("\n");
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif">
<style>
  .title { font-size: 15px; font-weight: bold; text-anchor: middle; fill: #222; }
  .subtitle { font-size: 12px; text-anchor: middle; fill: #555; }
  .label { font-size: 12px; text-anchor: middle; fill: #333; }
  .xtick { font-size: 12px; text-anchor: middle; fill: #333; }
  .ytick { font-size: 11px; text-anchor: end; dominant-baseline: middle; fill: #333; }
  .legend { font-size: 13px; fill: #222; }
  .note { font-size: 12px; text-anchor: start; fill: #333; font-style: italic; }
  .grid { stroke: #e4e4e4; stroke-width: 1; }
  .axis { stroke: #444; stroke-width: 1; }
</style>
<rect width="100%" height="100%" fill="#fff"/>
${chartPanel({
  x0: 0,
  y0: 0,
  width: panelWidth,
  height: panelHeight,
  title: "IMDS credential fetches",
  yLabel: "credential fetches (log scale)",
  log: true,
  counts,
  series: series.map((s) => ({ backend: s.backend, values: s.fetches })),
  format: (v) => String(v),
})}
${chartPanel({
  x0: panelWidth,
  y0: 0,
  width: panelWidth,
  height: panelHeight,
  title: "p99 time to first credential",
  yLabel: "ms from process start (node start-up included)",
  log: false,
  counts,
  series: series.map((s) => ({ backend: s.backend, values: s.p99 })),
  format: (v) => (v >= 1000 ? `${(v / 1000).toFixed(v % 1000 === 0 ? 0 : 1)} s` : `${v}`),
})}
<text x="${width / 2}" y="${height - 66}" class="subtitle">${esc(subtitle)}</text>
<text x="${width / 2}" y="${height - 48}" class="subtitle">${esc(footnote)}</text>
${legend}
</svg>
`;
}
