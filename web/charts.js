// charts.js — horizontal bar charts as inline SVG, drawn by the page (no library, no CDN).
//
// One row per item (a tensor, a stage): its name on the left, its bar, its value at the bar's
// end. Each row is a <g class="bar"> holding the bar's <rect>(s) and a <title> with the full
// name and value, so the number of bars is the number of rows and every bar can be hovered.
// A bar's length is value / axis maximum × plot width exactly (no rounding), so bars compare
// the way their values do. Names are put in with textContent only (ui.js's svg()), never as
// markup. The chart is drawn to its container's width, and drawn again when that changes, so
// a phone gets a narrow chart with readable text rather than a shrunken wide one.

import { el, svg } from "./ui.js";

const FONT_PX = 12;
const CHAR_PX = 6.6; // average width of a 12 px system-ui character, for trimming names

// A round number at or above x for the axis: 1, 2, 2.5, 5 × 10^k.
function niceMax(x) {
  if (!(x > 0) || !isFinite(x)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(x)));
  for (const m of [1, 2, 2.5, 5, 10]) {
    if (m * p >= x * (1 - 1e-12)) return m * p;
  }
  return 10 * p;
}

// Keep the end of a long name (tensor names differ at the end: ….q_proj.weight).
function trimName(name, px) {
  const n = Math.max(4, Math.floor(px / CHAR_PX));
  return name.length <= n ? name : "…" + name.slice(name.length - n + 1);
}

function draw(fig, spec) {
  const box = fig.querySelector(".plot");
  const W = Math.max(200, Math.floor(box.clientWidth || 600));
  const pair = Boolean(spec.pair);
  const rows = spec.rows;
  const values = rows.flatMap((r) => (pair ? [r.a, r.b] : [r.value])).filter((v) => isFinite(v));
  const max = niceMax(Math.max(0, ...values));
  // Narrow (a phone): each name on its own line above its bar, so the bars get the width.
  const stacked = W < 520;
  const labelW = stacked ? 0 : Math.round(Math.min(220, Math.max(80, W * 0.3)));
  const valueW = pair ? (stacked ? 112 : 130) : 60;
  const plotX = stacked ? 2 : labelW + 8;
  const plotW = Math.max(40, W - plotX - valueW);
  const nameH = stacked ? 15 : 0;
  const barsH = pair ? 22 : 14;
  const rowH = nameH + barsH + 8;
  const top = 20;
  const H = top + rows.length * rowH + 4;
  const fmt = spec.format || String;
  const tick = spec.tick || fmt;
  const nTicks = plotW >= 280 ? 4 : plotW >= 120 ? 2 : 1;

  const root = svg("svg", {
    class: "chart-svg",
    width: W,
    height: H,
    viewBox: `0 0 ${W} ${H}`,
    role: "img",
    "aria-label": spec.title,
    "data-plot-width": plotW,
    "data-axis-max": max,
  });
  // Grid lines and axis labels at even steps up to the axis maximum.
  const grid = svg("g", { class: "grid" });
  for (let i = 0; i <= nTicks; i++) {
    const x = plotX + (plotW * i) / nTicks;
    const anchor = i === 0 ? "start" : i === nTicks ? "end" : "middle";
    grid.append(
      svg("line", { x1: x, x2: x, y1: top - 4, y2: H - 2 }),
      svg("text", { x, y: top - 8, "text-anchor": anchor }, tick((max * i) / nTicks)),
    );
  }
  root.append(grid);

  const len = (v) => (isFinite(v) && v > 0 ? (v / max) * plotW : 0);
  rows.forEach((r, i) => {
    const y = top + i * rowH + 4;
    const name = String(r.label);
    const g = svg("g", { class: "bar", "data-name": name });
    const tip = pair ? `${name}: ${fmt(r.a)} → ${fmt(r.b)}` : `${name}: ${fmt(r.value)}`;
    g.append(svg("title", { text: tip }));
    if (stacked) {
      g.append(svg("text", { class: "label", x: plotX, y: y + FONT_PX - 1 }, trimName(name, W - 4)));
    } else {
      g.append(
        svg("text", { class: "label", x: labelW, y: y + barsH / 2 + FONT_PX / 3, "text-anchor": "end" }, trimName(name, labelW)),
      );
    }
    const by = y + nameH;
    let end;
    if (pair) {
      const h = (barsH - 2) / 2;
      g.append(
        svg("rect", { class: "before", x: plotX, y: by, width: len(r.a), height: h, "data-value": r.a }),
        svg("rect", { class: "after", x: plotX, y: by + h + 2, width: len(r.b), height: h, "data-value": r.b }),
      );
      end = plotX + Math.max(len(r.a), len(r.b));
    } else {
      g.append(svg("rect", { class: "value", x: plotX, y: by, width: len(r.value), height: barsH, "data-value": r.value }));
      end = plotX + len(r.value);
    }
    const text = pair ? `${fmt(r.a)} → ${fmt(r.b)}` : fmt(r.value);
    g.append(svg("text", { class: "val", x: end + 4, y: by + barsH / 2 + FONT_PX / 3 }, text));
    root.append(g);
  });
  box.replaceChildren(root);
}

// A chart figure: spec = {id, title, note, rows: [{label, value}] or, with pair: true,
// [{label, a, b}] and legend: [aName, bName], format: value → text, tick: the same for the
// axis (defaults to format)}. Drawn once it is on the
// page and has a width.
export function barChart(spec) {
  const legend = spec.pair
    ? el(
        "span",
        { class: "legend" },
        el("i", { class: "swatch before" }),
        spec.legend[0],
        " ",
        el("i", { class: "swatch after" }),
        spec.legend[1],
      )
    : null;
  const fig = el(
    "figure",
    { class: "chart", "data-chart": spec.id },
    el("figcaption", {}, el("strong", {}, spec.title), spec.note ? el("span", { class: "muted" }, " · " + spec.note) : null, legend),
    el("div", { class: "plot" }),
  );
  let lastW = -1;
  const ro = new ResizeObserver(() => {
    if (!fig.isConnected) {
      ro.disconnect();
      return;
    }
    const w = Math.floor(fig.querySelector(".plot").clientWidth);
    if (w > 0 && w !== lastW) {
      lastW = w;
      draw(fig, spec);
    }
  });
  ro.observe(fig);
  return fig;
}
