// ui.js — building DOM and SVG from data, and the formats every page shares.
//
// Invariant: nothing here ever parses a string as markup. el() and svg() create elements with
// createElement / createElementNS, set attributes one by one (names are ours, values are any
// string), and turn every child that is not a Node into a text node. A model file can name its
// tensors `<img src=x onerror=…>` and the page shows exactly those characters.

const SVG_NS = "http://www.w3.org/2000/svg";

function fill(node, attrs, children) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "text") node.textContent = String(v);
    else if (k.startsWith("on") && typeof v === "function") node.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(node.dataset, v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

// el("a", {href: "#/jobs", class: "x"}, "text", child…): an HTML element.
export function el(tag, attrs, ...children) {
  return fill(document.createElement(tag), attrs, children);
}

// svg("rect", {x: 0, …}, child…): an SVG element.
export function svg(tag, attrs, ...children) {
  return fill(document.createElementNS(SVG_NS, tag), attrs, children);
}

const has = (v) => v !== undefined && v !== null && !(typeof v === "number" && !isFinite(v));

export function fmtBytes(n) {
  if (!has(n)) return "—";
  const units = ["B", "kB", "MB", "GB", "TB"];
  let i = 0;
  let x = Number(n);
  while (Math.abs(x) >= 1000 && i < units.length - 1) {
    x /= 1000;
    i++;
  }
  // Three significant digits: 941 kB, 25.1 kB, 1.34 MB.
  const digits = i === 0 ? 0 : Math.abs(x) < 10 ? 2 : Math.abs(x) < 100 ? 1 : 0;
  return trimZeros(x.toFixed(digits)) + " " + units[i];
}

export function fmtRatio(r) {
  return has(r) ? Number(r).toFixed(2) + "×" : "—";
}

export function fmtPct(x, digits = 1) {
  return has(x) ? (Number(x) * 100).toFixed(digits) + " %" : "—";
}

// "8.00" → "8", "0.2500" → "0.25", "250" stays.
function trimZeros(s) {
  return s.includes(".") ? s.replace(/0+$/, "").replace(/\.$/, "") : s;
}

// Three significant digits, no trailing zeros: axis labels (0.0025, 0.005, 2.5, 250).
export function fmtSig(x) {
  return has(x) ? String(Number(Number(x).toPrecision(3))) : "—";
}

export function fmtNum(x, digits = 3) {
  if (!has(x)) return "—";
  const a = Math.abs(x);
  if (a !== 0 && (a < 1e-3 || a >= 1e6)) return Number(x).toExponential(2);
  return trimZeros(Number(x).toFixed(digits));
}

// A latency given in milliseconds, three significant digits in the unit that suits it: a small
// model runs in microseconds (0.196 µs, 2.35 µs), a large one in ms or s.
export function fmtMs(ms) {
  if (!has(ms)) return "—";
  const a = Math.abs(ms);
  if (a !== 0 && a < 1) return fmtSig(ms * 1000) + " µs";
  if (a < 1000) return fmtSig(ms) + " ms";
  return fmtSig(ms / 1000) + " s";
}

export function fmtDuration(s) {
  if (!has(s)) return "—";
  if (s < 1) return Math.round(s * 1000) + " ms";
  if (s < 60) return s.toFixed(1) + " s";
  const m = Math.floor(s / 60);
  if (m < 60) return m + " min " + Math.round(s - m * 60) + " s";
  return Math.floor(m / 60) + " h " + (m % 60) + " min";
}

export function fmtTime(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  if (isNaN(d)) return String(iso);
  const pad = (v) => String(v).padStart(2, "0");
  const today = new Date();
  const hm = pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
  if (d.toDateString() === today.toDateString()) return hm;
  return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " + hm;
}

// Seconds a job has run: its duration once finished, the time since it started while running.
export function jobSeconds(job) {
  if (has(job.duration_s)) return job.duration_s;
  if (job.state === "running" && job.started_at) {
    return Math.max(0, (Date.now() - Date.parse(job.started_at)) / 1000);
  }
  return null;
}

// One line for a recipe: "prune 50 % → share 16 → huffman".
export function recipeSummary(r) {
  if (!r || typeof r !== "object" || !Array.isArray(r.steps)) return "—";
  const parts = r.steps.map((s) => {
    const name = s && typeof s === "object" ? Object.keys(s)[0] : String(s);
    const a = (s && s[name]) || {};
    switch (name) {
      case "prune": {
        const st = a.structure && a.structure !== "none" ? " " + a.structure : "";
        return "prune " + Math.round((a.sparsity ?? 0) * 100) + " %" + st;
      }
      case "quantize": {
        if (a.format && a.format !== "int") return a.format;
        let t = "int" + (a.bits ?? 8);
        if (a.granularity === "group") t += " g" + (a.group_size ?? 128);
        else if (a.granularity === "tensor") t += " per tensor";
        if (a.scheme === "asymmetric") t += " asym";
        if (a.method === "gptq") t += " gptq";
        return t;
      }
      case "share":
        return "share " + (a.clusters ?? 16);
      case "lowrank":
        if (has(a.rank)) return "low-rank r=" + a.rank;
        if (has(a.rank_ratio)) return "low-rank " + Math.round(a.rank_ratio * 100) + " %";
        if (has(a.energy)) return "low-rank E=" + a.energy;
        return "low-rank";
      default:
        return name;
    }
  });
  return parts.join(" → ") || "—";
}

// The evaluation block of a report or a job's metrics, or null.
export function evaluationOf(m) {
  const e = m && m.evaluation;
  return e && typeof e === "object" && e.before && e.after ? e : null;
}

// Accuracy after minus before, in percentage points, or null.
export function accuracyDelta(m) {
  const e = evaluationOf(m);
  if (!e || !has(e.before.accuracy) || !has(e.after.accuracy)) return null;
  return (e.after.accuracy - e.before.accuracy) * 100;
}

export function fmtDelta(pp) {
  if (!has(pp)) return "—";
  const s = pp > 0 ? "+" : pp < 0 ? "−" : "±";
  return s + Math.abs(pp).toFixed(2) + " pp";
}

export const STATES = ["queued", "running", "succeeded", "failed", "canceled"];

export function stateBadge(state) {
  const known = STATES.includes(state) ? state : "unknown";
  return el("span", { class: "badge " + known, dataset: { state: String(state) } }, String(state));
}

export function progressBar(fraction, label) {
  const pct = Math.max(0, Math.min(100, Math.round((Number(fraction) || 0) * 100)));
  const fillSpan = el("span", { class: "fill" });
  fillSpan.style.width = pct + "%";
  return el(
    "div",
    {
      class: "progress",
      role: "progressbar",
      "aria-valuemin": 0,
      "aria-valuemax": 100,
      "aria-valuenow": pct,
      "aria-label": label || "progress",
    },
    fillSpan,
  );
}

// A message box: kind is "error", "info" or "ok".
export function notice(kind, ...children) {
  return el("div", { class: "notice " + kind, role: kind === "error" ? "alert" : "status" }, ...children);
}

// A button that asks for a second click within 5 s before it acts.
export function confirmButton(label, confirmLabel, cls, action) {
  const b = el("button", { type: "button", class: "button " + cls }, label);
  let armed = null;
  b.addEventListener("click", async () => {
    if (!armed) {
      b.textContent = confirmLabel;
      b.classList.add("armed");
      armed = setTimeout(() => {
        armed = null;
        b.textContent = label;
        b.classList.remove("armed");
      }, 5000);
      return;
    }
    clearTimeout(armed);
    armed = null;
    b.disabled = true;
    try {
      await action();
    } finally {
      b.disabled = false;
      b.textContent = label;
      b.classList.remove("armed");
    }
  });
  return b;
}
