// job.js — one job: where it is, what it was asked, what it bought, and its files.
//
// GET /jobs/<id> is fetched every second while the job is queued or running (the progress bar
// and the stage move); once it has finished, its report (GET /jobs/<id>/report) gives the
// per-tensor charts — sparsity, bits per weight, relative error, bytes before and after, one
// bar per compressed tensor — and, when the job was evaluated on a dataset, accuracy and
// latency before and after. Cancel and delete take two clicks, so a stray tap costs nothing.

import { getJSON, del, download, hasToken } from "./api.js";
import { barChart } from "./charts.js";
import {
  el,
  fmtBytes,
  fmtRatio,
  fmtPct,
  fmtNum,
  fmtSig,
  fmtDuration,
  fmtMs,
  fmtTime,
  fmtDelta,
  evaluationOf,
  jobSeconds,
  recipeSummary,
  stateBadge,
  progressBar,
  notice,
  confirmButton,
} from "./ui.js";

const POLL_MS = 1000;
const ACTIVE = new Set(["queued", "running"]);

function stat(label, value, key) {
  return el("div", { class: "stat", "data-stat": key }, el("div", { class: "stat-label" }, label), el("div", { class: "stat-value" }, value));
}

function downloadLink(label, path, name) {
  const a = el("a", { href: path, class: "button", download: name, "data-download": label.toLowerCase() }, label);
  // With a token the file must be fetched with the Authorization header (a link cannot send it).
  a.addEventListener("click", async (e) => {
    if (!hasToken()) return;
    e.preventDefault();
    try {
      await download(path, name);
    } catch (err) {
      a.after(notice("error", `Cannot download the ${label.toLowerCase()}: ${err.message}`));
    }
  });
  return a;
}

function summary(job) {
  const m = job.metrics || {};
  const model = job.model || {};
  const cards = [
    stat("Size before", fmtBytes(m.bytes_before ?? model.bytes), "bytes_before"),
    stat("Size after", fmtBytes(m.bytes_after), "bytes_after"),
    stat("Compression", fmtRatio(m.compression_ratio), "compression_ratio"),
    stat("Tensors compressed", m.n_tensors !== undefined ? `${m.n_compressed ?? "?"} of ${m.n_tensors}` : "—", "tensors"),
    stat("Duration", fmtDuration(jobSeconds(job)), "duration"),
    stat("Output", m.output_format || "—", "output_format"),
  ];
  if (job.result_bytes) cards.push(stat("Result file", fmtBytes(job.result_bytes), "result_bytes"));
  if (job.attempts > 1) cards.push(stat("Attempts", String(job.attempts), "attempts"));
  return el("section", { class: "stats", "aria-label": "totals" }, cards);
}

function stagesChart(m) {
  if (!Array.isArray(m.stages) || m.stages.length === 0 || m.bytes_before === undefined) return null;
  const rows = [{ label: "original", value: m.bytes_before }];
  m.stages.forEach((s, i) => rows.push({ label: `${i + 1}. ${s.step}`, value: s.bytes }));
  return barChart({ id: "stages", title: "Size after each step", rows, format: fmtBytes });
}

function evaluation(e, recipe) {
  const b = e.before || {};
  const a = e.after || {};
  const metric = (recipe && recipe.evaluate && recipe.evaluate.metric) || "";
  const accLabel = metric === "top1" ? "Top-1 accuracy" : metric ? "Accuracy (" + metric + ")" : "Accuracy";
  const speed = (x) => (x ? fmtNum(x, 2) + "×" : "—");
  const rows = [
    [accLabel, fmtPct(b.accuracy, 2), fmtPct(a.accuracy, 2), fmtDelta(isFinite(a.accuracy - b.accuracy) ? (a.accuracy - b.accuracy) * 100 : null)],
    ["Latency, batch 1", fmtMs(b.latency_ms), fmtMs(a.latency_ms), speed(e.speedup) + " speed-up"],
  ];
  if (b.latency_ms_b32 !== undefined || a.latency_ms_b32 !== undefined) {
    rows.push(["Latency, batch 32", fmtMs(b.latency_ms_b32), fmtMs(a.latency_ms_b32), speed(e.speedup_b32) + " speed-up"]);
  }
  const table = el(
    "table",
    { class: "eval" },
    el("thead", {}, el("tr", {}, ["", "Before", "After", "Change"].map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, rows.map((r) => el("tr", {}, el("th", { scope: "row" }, r[0]), r.slice(1).map((c) => el("td", { class: "num" }, c))))),
  );
  const extra = [];
  if (e.agreement !== undefined) extra.push("top-1 agreement with the original " + fmtPct(e.agreement, 2));
  // A null SNR means no noise at all: the outputs are the original's, bit for bit.
  if (e.output_snr_db === null) extra.push("outputs identical to the original's");
  else if (e.output_snr_db !== undefined) extra.push("output SNR " + fmtNum(e.output_snr_db, 1) + " dB");
  const charts = [];
  if (isFinite(b.accuracy) && isFinite(a.accuracy)) {
    charts.push(barChart({ id: "eval-accuracy", title: "Accuracy", pair: true, legend: ["before", "after"], rows: [{ label: metric || "accuracy", a: b.accuracy, b: a.accuracy }], format: (v) => fmtPct(v, 1), tick: (v) => fmtSig(v * 100) + " %" }));
  }
  const lat = [];
  if (isFinite(b.latency_ms) && isFinite(a.latency_ms)) lat.push({ label: "batch 1", a: b.latency_ms, b: a.latency_ms });
  if (isFinite(b.latency_ms_b32) && isFinite(a.latency_ms_b32)) lat.push({ label: "batch 32", a: b.latency_ms_b32, b: a.latency_ms_b32 });
  if (lat.length) {
    // One unit for the whole chart: µs when every latency is below a millisecond.
    const us = Math.max(...lat.flatMap((r) => [r.a, r.b])) < 1;
    const scaled = us ? lat.map((r) => ({ label: r.label, a: r.a * 1000, b: r.b * 1000 })) : lat;
    charts.push(barChart({ id: "eval-latency", title: us ? "Latency (µs)" : "Latency (ms)", pair: true, legend: ["before", "after"], rows: scaled, format: fmtSig, tick: fmtSig }));
  }
  return el(
    "section",
    { class: "card", id: "evaluation" },
    el("h2", {}, "Accuracy and speed"),
    el("div", { class: "table-wrap" }, table),
    extra.length ? el("p", { class: "muted" }, extra.join(" · ")) : null,
    el("div", { class: "chart-grid" }, charts),
  );
}

function tensorCharts(tensors) {
  const label = (t) => String(t.name);
  const charts = [
    barChart({ id: "sparsity", title: "Sparsity", note: "share of zero weights", rows: tensors.map((t) => ({ label: label(t), value: t.sparsity })), format: (v) => fmtPct(v, 1), tick: (v) => fmtSig(v * 100) + " %" }),
    barChart({ id: "bits_per_weight", title: "Bits per weight", note: "stored bits ÷ weights", rows: tensors.map((t) => ({ label: label(t), value: t.bits_per_weight })), format: (v) => fmtNum(v, 2), tick: fmtSig }),
    barChart({ id: "rel_error", title: "Relative error", note: "‖W − Ŵ‖ ÷ ‖W‖", rows: tensors.map((t) => ({ label: label(t), value: t.rel_error })), format: (v) => fmtNum(v, 4), tick: fmtSig }),
    barChart({ id: "bytes", title: "Bytes", pair: true, legend: ["before", "after"], rows: tensors.map((t) => ({ label: label(t), a: t.bytes_before, b: t.bytes_after })), format: fmtBytes }),
  ];
  const head = ["Tensor", "Shape", "Steps", "Sparsity", "Bits/weight", "Before", "After", "Rel. error", "SQNR"];
  const table = el(
    "table",
    { class: "tensors" },
    el("thead", {}, el("tr", {}, head.map((h, i) => el("th", { scope: "col", class: i >= 3 ? "num" : null }, h)))),
    el(
      "tbody",
      {},
      tensors.map((t) =>
        el(
          "tr",
          {},
          el("td", { class: "tensor-name" }, String(t.name)),
          el("td", {}, Array.isArray(t.shape) ? t.shape.join("×") : "—"),
          el("td", {}, Array.isArray(t.steps) ? t.steps.join(", ") : "—"),
          el("td", { class: "num" }, fmtPct(t.sparsity, 1)),
          el("td", { class: "num" }, fmtNum(t.bits_per_weight, 2)),
          el("td", { class: "num" }, fmtBytes(t.bytes_before)),
          el("td", { class: "num" }, fmtBytes(t.bytes_after)),
          el("td", { class: "num" }, fmtNum(t.rel_error, 4)),
          el("td", { class: "num" }, t.sqnr_db !== undefined && t.sqnr_db !== null ? fmtNum(t.sqnr_db, 1) + " dB" : "—"),
        ),
      ),
    ),
  );
  return el(
    "section",
    { class: "card", id: "tensors" },
    el("h2", {}, `Per tensor (${tensors.length} compressed)`),
    el("div", { class: "chart-grid" }, charts),
    el("details", { class: "tensor-table" }, el("summary", {}, "All figures as a table"), el("div", { class: "table-wrap" }, table)),
  );
}

export function render(main, id) {
  let stopped = false;
  let timer = null;
  let shownState = null;
  let flash = null;
  let seq = 0; // only the latest poll draws and schedules the next one

  const head = el("div", { class: "page-head" });
  const live = el("section", { class: "card live", "aria-live": "polite" });
  const body = el("div", { class: "job-body" });
  main.append(el("p", { class: "crumbs" }, el("a", { href: "#/jobs" }, "← All jobs")), head, live, body);

  function drawHead(job) {
    const model = job.model || {};
    head.replaceChildren(
      el("div", {}, el("h1", { class: "model-name" }, model.name || "(raw upload)"), el("div", { class: "muted small mono" }, "job " + job.id)),
      stateBadge(job.state),
    );
    document.title = (model.name || "job") + " — modelpress";
  }

  function drawLive(job) {
    const parts = [];
    if (ACTIVE.has(job.state)) {
      const pct = Math.round((job.progress || 0) * 100);
      const stage = job.state === "queued" ? "waiting for a free worker" : job.stage ? "stage: " + job.stage : "starting";
      parts.push(
        el("div", { class: "progress-line" }, el("span", { class: "pct", id: "job-pct" }, pct + " %"), el("span", { class: "stage", id: "job-stage" }, stage)),
        progressBar(job.progress, "job progress"),
      );
    }
    if (job.error && (job.error.code || job.error.message)) {
      parts.push(notice("error", el("strong", {}, job.error.code || "error"), ": ", job.error.message || ""));
    }
    if (flash) parts.push(flash);
    const actions = el("div", { class: "actions" });
    if (job.state === "succeeded" && job.links) {
      if (job.links.result) actions.append(downloadLink("Result", job.links.result, "model.compressed.safetensors"));
      if (job.links.report) actions.append(downloadLink("Report", job.links.report, job.id + ".report.json"));
    }
    if (ACTIVE.has(job.state)) {
      actions.append(
        confirmButton("Cancel job", "Click again to cancel", "danger cancel", async () => {
          try {
            const r = await del("/jobs/" + job.id);
            flash = notice("info", r.status === 202 ? "Cancel requested: the worker stops at its next check." : "Canceled.");
          } catch (e) {
            flash = notice("error", "Cannot cancel: " + e.message);
          }
          poll(true);
        }),
      );
    } else {
      actions.append(
        confirmButton("Delete job", "Click again to delete", "danger delete", async () => {
          try {
            await del("/jobs/" + job.id);
            location.hash = "#/jobs";
          } catch (e) {
            flash = notice("error", "Cannot delete: " + e.message);
            drawLive(job);
          }
        }),
      );
    }
    parts.push(actions);
    const times = [
      "created " + fmtTime(job.created_at),
      job.started_at ? "started " + fmtTime(job.started_at) : null,
      job.finished_at ? "finished " + fmtTime(job.finished_at) : null,
      job.owner ? "owner " + job.owner : null,
    ].filter(Boolean);
    parts.push(el("p", { class: "muted small" }, times.join(" · ")));
    live.replaceChildren(...parts);
  }

  async function drawBody(job) {
    const m = job.metrics || {};
    const model = job.model || {};
    const recipe = el(
      "section",
      { class: "card", id: "recipe" },
      el("h2", {}, "Recipe"),
      el("p", {}, recipeSummary(job.recipe)),
      el("pre", { class: "json" }, JSON.stringify(job.recipe, null, 2)),
      el("p", { class: "muted small mono" }, "model sha256 " + (model.sha256 || "—")),
      job.dataset && job.dataset.id
        ? el("p", { class: "muted small mono", id: "job-dataset" }, "dataset ", el("a", { href: "#/datasets", title: job.dataset.id }, String(job.dataset.id).slice(0, 12)))
        : null,
    );
    const blocks = [summary(job)];
    const stages = stagesChart(m);
    if (stages) blocks.push(el("section", { class: "card" }, stages));
    body.replaceChildren(...blocks, recipe);
    if (job.state !== "succeeded" || !job.links || !job.links.report) return;
    let report;
    try {
      report = await getJSON(job.links.report);
    } catch (e) {
      if (!stopped) body.append(notice("error", "Cannot load the report: " + e.message));
      return;
    }
    if (stopped) return;
    const ev = evaluationOf(report) || evaluationOf(m);
    if (ev) body.insertBefore(evaluation(ev, job.recipe), recipe);
    const tensors = Array.isArray(report.tensors) ? report.tensors : [];
    if (tensors.length > 0) body.insertBefore(tensorCharts(tensors), recipe);
    else body.insertBefore(el("section", { class: "card" }, el("p", { class: "muted" }, "No tensor was compressed.")), recipe);
  }

  async function poll(now) {
    if (timer) clearTimeout(timer);
    timer = null;
    if (!now && document.hidden) return schedule();
    const mine = ++seq;
    let job;
    try {
      job = await getJSON("/jobs/" + encodeURIComponent(id));
    } catch (e) {
      if (stopped || mine !== seq) return;
      if (e.status === 404) {
        head.replaceChildren(el("h1", {}, "No such job"));
        live.replaceChildren(notice("error", "There is no job " + id + " here (it may have been deleted, or belong to someone else)."), el("p", {}, el("a", { href: "#/jobs" }, "Back to the jobs")));
        body.replaceChildren();
        return;
      }
      live.replaceChildren(notice("error", "Cannot reach the service: " + e.message));
      return schedule();
    }
    if (stopped || mine !== seq) return;
    drawHead(job);
    drawLive(job);
    if (job.state !== shownState) {
      shownState = job.state;
      drawBody(job);
    } else if (job.state === "running") {
      const d = body.querySelector('[data-stat="duration"] .stat-value');
      if (d) d.textContent = fmtDuration(jobSeconds(job));
    }
    if (ACTIVE.has(job.state)) schedule();
  }
  function schedule() {
    if (!stopped) timer = setTimeout(() => poll(false), POLL_MS);
  }
  poll(true);
  return () => {
    stopped = true;
    if (timer) clearTimeout(timer);
  };
}
