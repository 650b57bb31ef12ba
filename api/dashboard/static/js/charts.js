// Small SVG charts, drawn here rather than by a charting library: bars, columns over time, and
// an interval. Each is an <svg role="img"> with a title and a description that states the data,
// and every chart on the page sits next to a table of the same numbers.

const NS = "http://www.w3.org/2000/svg";
let serial = 0;

function svgEl(tag, attributes = {}, text) {
  const node = document.createElementNS(NS, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

function frame(width, height, title, description) {
  const id = `chart-${(serial += 1)}`;
  const svg = svgEl("svg", {
    viewBox: `0 0 ${width} ${height}`,
    role: "img",
    "aria-labelledby": `${id}-title ${id}-desc`,
    class: "chart-svg",
    preserveAspectRatio: "xMinYMin meet",
  });
  svg.append(svgEl("title", { id: `${id}-title` }, title), svgEl("desc", { id: `${id}-desc` }, description));
  return svg;
}

/** An axis for counts: whole-number ticks (at most 5 steps) and the top of the scale. */
function countAxis(value) {
  if (value <= 0) return { max: 1, step: 1 };
  const raw = value / 4;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = Math.max(1, [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw));
  return { max: Math.ceil(value / step) * step, step };
}

function niceMax(value) {
  return countAxis(value).max;
}

const number = (n) => Number(n).toLocaleString("en-GB");

// Label widths measured in the page's own font: guessed from the number of characters, the
// widest label ran past the chart's left edge in a wide font (the first trial's clipped label).
let measurer = null;
function textWidth(text, px, weight = "normal") {
  measurer ??= document.createElement("canvas").getContext("2d");
  const family = getComputedStyle(document.body).fontFamily || "sans-serif";
  measurer.font = `${weight} ${px}px ${family}`;
  return measurer.measureText(text).width;
}

/** `text` shortened with an ellipsis until it is at most `max` pixels wide. */
function fitText(text, max, px, weight) {
  if (textWidth(text, px, weight) <= max) return text;
  let cut = text.length;
  while (cut > 1 && textWidth(`${text.slice(0, cut)}…`, px, weight) > max) cut -= 1;
  return `${text.slice(0, cut)}…`;
}

/** Horizontal bars: rows of {label, value, note?}. */
export function barChart(rows, { title, width = 560, unit = "" } = {}) {
  // Labels get what they need, leaving the bars at least 100 px; a longer one ends in an
  // ellipsis (the whole label is in the chart's description and the table beside it).
  const widest = Math.max(0, ...rows.map((r) => textWidth(r.label, 13)));
  const valueWidth = Math.max(40, ...rows.map((r) => textWidth(`${number(r.value)}${unit}${r.note ? ` · ${r.note}` : ""}`, 13, "600") + 10));
  const labelWidth = Math.round(Math.max(60, Math.min(widest + 14, width - valueWidth - 100)));
  const barHeight = 26;
  const gap = 10;
  const height = Math.max(40, rows.length * (barHeight + gap) + 10);
  const max = niceMax(Math.max(0, ...rows.map((r) => r.value)));
  const description = rows.map((r) => `${r.label}: ${number(r.value)}${unit}${r.note ? ` (${r.note})` : ""}`).join("; ");
  const svg = frame(width, height, title, description || "No data");
  const plot = Math.max(40, width - labelWidth - valueWidth);
  rows.forEach((row, i) => {
    const y = 5 + i * (barHeight + gap);
    const w = Math.max(row.value > 0 ? 2 : 0, (row.value / max) * plot);
    const label = fitText(row.label, labelWidth - 10, 13);
    svg.append(
      svgEl("text", { x: labelWidth - 8, y: y + barHeight / 2 + 5, "text-anchor": "end", class: "chart-label" }, label),
      svgEl("rect", { x: labelWidth, y, width: plot, height: barHeight, class: "chart-track", rx: 3 }),
      svgEl("rect", { x: labelWidth, y, width: w, height: barHeight, class: row.className || "chart-bar", rx: 3 }),
      svgEl("text", { x: labelWidth + w + 6, y: y + barHeight / 2 + 5, class: "chart-value" }, `${number(row.value)}${unit}${row.note ? ` · ${row.note}` : ""}`),
    );
  });
  if (!rows.length) svg.append(svgEl("text", { x: 10, y: 25, class: "chart-label" }, "No data in this period"));
  return svg;
}

/** Columns over time: rows of {label, value}, labels shown every few columns. */
export function columnChart(rows, { title, width = 900, height = 240 } = {}) {
  const left = 44;
  const bottom = 28;
  const top = 10;
  const plotW = width - left - 10;
  const plotH = height - top - bottom;
  const { max, step } = countAxis(Math.max(0, ...rows.map((r) => r.value)));
  const total = rows.reduce((s, r) => s + r.value, 0);
  const busiest = rows.reduce((best, r) => (r.value > (best?.value ?? -1) ? r : best), null);
  const description = rows.length
    ? `${number(total)} in all over ${rows.length} periods from ${rows[0].label} to ${rows.at(-1).label}` +
      (busiest && busiest.value > 0 ? `; the most, ${number(busiest.value)}, on ${busiest.label}` : "")
    : "No data";
  const svg = frame(width, height, title, description);
  for (let v = 0; v <= max; v += step) {
    const y = top + plotH - (plotH * v) / max;
    svg.append(
      svgEl("line", { x1: left, x2: width - 10, y1: y, y2: y, class: v === 0 ? "chart-axis" : "chart-grid" }),
      svgEl("text", { x: left - 6, y: y + 4, "text-anchor": "end", class: "chart-tick" }, number(v)),
    );
  }
  const slot = plotW / Math.max(1, rows.length);
  const every = Math.max(1, Math.ceil(rows.length / Math.floor(plotW / 70)));
  rows.forEach((row, i) => {
    const h = (row.value / max) * plotH;
    const x = left + i * slot;
    const bar = svgEl("rect", { x: x + slot * 0.15, y: top + plotH - h, width: Math.max(1, slot * 0.7), height: h, class: "chart-bar" });
    bar.append(svgEl("title", {}, `${row.label}: ${number(row.value)}`));
    svg.append(bar);
    if (i % every === 0) {
      svg.append(svgEl("text", { x: x + slot / 2, y: height - 8, "text-anchor": "middle", class: "chart-tick" }, row.short || row.label));
    }
  });
  if (!rows.length) svg.append(svgEl("text", { x: left + 10, y: top + plotH / 2, class: "chart-label" }, "No data in this period"));
  return svg;
}

/** A point with its interval on a scale around zero: the lift and its 95% interval. */
export function intervalChart({ estimate, low, high }, { title, width = 560, height = 90, format = (v) => v } = {}) {
  const span = Math.max(0.05, Math.abs(low), Math.abs(high), Math.abs(estimate)) * 1.15;
  const left = 20;
  const right = width - 20;
  const x = (v) => left + ((v + span) / (2 * span)) * (right - left);
  const description = `Estimate ${format(estimate)}, 95% interval from ${format(low)} to ${format(high)}; the zero line marks no effect.`;
  const svg = frame(width, height, title, description);
  const y = 40;
  svg.append(
    svgEl("line", { x1: left, x2: right, y1: y, y2: y, class: "chart-grid" }),
    svgEl("line", { x1: x(0), x2: x(0), y1: 12, y2: 68, class: "chart-axis" }),
    svgEl("text", { x: x(0), y: 84, "text-anchor": "middle", class: "chart-tick" }, "no effect"),
    svgEl("line", { x1: x(low), x2: x(high), y1: y, y2: y, class: "chart-interval" }),
    svgEl("line", { x1: x(low), x2: x(low), y1: y - 9, y2: y + 9, class: "chart-interval" }),
    svgEl("line", { x1: x(high), x2: x(high), y1: y - 9, y2: y + 9, class: "chart-interval" }),
    svgEl("circle", { cx: x(estimate), cy: y, r: 7, class: "chart-point" }),
    svgEl("text", { x: x(low), y: 20, "text-anchor": "middle", class: "chart-tick" }, format(low)),
    svgEl("text", { x: x(high), y: 20, "text-anchor": "middle", class: "chart-tick" }, format(high)),
    svgEl("text", { x: x(estimate), y: 64, "text-anchor": "middle", class: "chart-value" }, format(estimate)),
  );
  return svg;
}
