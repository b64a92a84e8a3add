// jobs.js — the job history: state, owner, model, recipe, what it bought, how long it took.
//
// Filters and the page number live in the URL (#/jobs?state=running&owner=ana&page=2), so the
// back button and a shared link show the same list. The list is fetched again every 2 s while
// the tab is visible (GET /jobs?state=&owner=&limit=&offset=), so running jobs move on their
// own. With auth on the server shows a person their own jobs only, and the owner filter is
// hidden. On a narrow screen each row becomes a card (style.css), labelled by data-label.

import { getJSON, hasToken } from "./api.js";
import {
  el,
  fmtBytes,
  fmtRatio,
  fmtDuration,
  fmtTime,
  fmtDelta,
  accuracyDelta,
  jobSeconds,
  recipeSummary,
  stateBadge,
  progressBar,
  notice,
  STATES,
} from "./ui.js";

const PAGE_SIZE = 20;
const POLL_MS = 2000;

function href(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v) q.set(k, v);
  const s = q.toString();
  return "#/jobs" + (s ? "?" + s : "");
}

// A cell that shows only "—" is marked "none": the phone layout leaves it out of the card.
function cell(label, cls, ...children) {
  const none = children.length === 1 && children[0] === "—";
  return el("td", { "data-label": label, class: [cls, none ? "none" : ""].filter(Boolean).join(" ") || null }, ...children);
}

function row(job) {
  const m = job.metrics || {};
  const active = job.state === "queued" || job.state === "running";
  const stateCell = cell("State", "state", stateBadge(job.state));
  if (active) {
    const pct = Math.round((job.progress || 0) * 100);
    stateCell.append(
      el("div", { class: "mini" }, progressBar(job.progress, "job progress"), el("span", { class: "muted" }, pct + " %" + (job.stage ? " · " + job.stage : ""))),
    );
  }
  if (job.error && job.error.message) stateCell.append(el("div", { class: "err" }, job.error.message));
  const model = job.model || {};
  const delta = accuracyDelta(m);
  return el(
    "tr",
    { "data-job": job.id, class: "job-row" },
    cell("Job", "id", el("a", { href: "#/jobs/" + job.id, title: job.id }, String(job.id).slice(0, 8))),
    cell(
      "Model",
      "model",
      el("a", { href: "#/jobs/" + job.id, class: "model-name" }, model.name || "(raw upload)"),
      el("div", { class: "muted small" }, fmtBytes(model.bytes)),
    ),
    stateCell,
    cell("Owner", "owner", job.owner || "—"),
    cell("Recipe", "recipe", recipeSummary(job.recipe)),
    cell("Ratio", "num ratio", fmtRatio(m.compression_ratio)),
    cell("Δ accuracy", "num delta" + (delta === null ? "" : delta < -1 ? " bad" : delta > 0 ? " good" : ""), fmtDelta(delta)),
    cell("Duration", "num duration", fmtDuration(jobSeconds(job))),
    cell("Created", "created muted", fmtTime(job.created_at)),
  );
}

export function render(main, params) {
  const state = STATES.includes(params.get("state")) ? params.get("state") : "";
  const owner = params.get("owner") || "";
  const page = Math.max(1, parseInt(params.get("page") || "1", 10) || 1);
  let timer = null;
  let stopped = false;

  const filters = el("div", { class: "filters", role: "group", "aria-label": "filter by state" });
  for (const s of ["", ...STATES]) {
    filters.append(
      el("a", { href: href({ state: s, owner }), class: "chip" + (s === state ? " on" : ""), "data-state": s || "all" }, s || "all"),
    );
  }
  const ownerForm = el(
    "form",
    { class: "owner-filter" },
    el("label", { for: "owner-input" }, "Owner"),
    el("input", { id: "owner-input", name: "owner", type: "search", value: owner, placeholder: "anyone", autocomplete: "off" }),
  );
  ownerForm.addEventListener("submit", (e) => {
    e.preventDefault();
    location.hash = href({ state, owner: ownerForm.owner.value.trim() });
  });
  ownerForm.hidden = hasToken(); // with auth on, the server lists only the caller's jobs

  const tbody = el("tbody", { id: "jobs-body" });
  const table = el(
    "table",
    { class: "jobs cards" },
    el(
      "thead",
      {},
      el(
        "tr",
        {},
        ["Job", "Model", "State", "Owner", "Recipe", "Ratio", "Δ accuracy", "Duration", "Created"].map((h) =>
          el("th", { class: ["Ratio", "Δ accuracy", "Duration"].includes(h) ? "num" : null, scope: "col" }, h),
        ),
      ),
    ),
    tbody,
  );
  const pager = el("nav", { class: "pager", "aria-label": "pages" });
  const status = el("div", { class: "status muted", role: "status" });
  const errBox = el("div");

  main.append(
    el("div", { class: "page-head" }, el("h1", {}, "Jobs"), el("a", { href: "#/submit", class: "button primary" }, "New job")),
    el("div", { class: "toolbar" }, filters, ownerForm),
    errBox,
    el("div", { class: "table-wrap" }, table),
    pager,
    status,
  );

  async function refresh() {
    timer = null;
    if (document.hidden) {
      schedule();
      return;
    }
    const q = new URLSearchParams({ limit: String(PAGE_SIZE), offset: String((page - 1) * PAGE_SIZE) });
    if (state) q.set("state", state);
    if (owner && !hasToken()) q.set("owner", owner);
    try {
      const body = await getJSON("/jobs?" + q);
      if (stopped) return;
      errBox.replaceChildren();
      ownerForm.hidden = hasToken();
      const list = Array.isArray(body.jobs) ? body.jobs : [];
      tbody.replaceChildren(...list.map(row));
      if (list.length === 0) {
        const what = state ? `No ${state} jobs` : "No jobs yet";
        tbody.append(
          el("tr", { class: "empty" }, el("td", { colspan: 9 }, what + (owner ? " of " + owner : "") + ". ", el("a", { href: "#/submit" }, "Submit one."))),
        );
      }
      const total = Number(body.total) || 0;
      const first = total === 0 ? 0 : (page - 1) * PAGE_SIZE + 1;
      const last = (page - 1) * PAGE_SIZE + list.length;
      const pages = Math.max(1, Math.ceil(total / PAGE_SIZE));
      pager.replaceChildren(
        page > 1 ? el("a", { href: href({ state, owner, page: page - 1 }), class: "button", rel: "prev" }, "← Newer") : el("span"),
        el("span", { class: "muted", id: "page-info" }, `${first}–${last} of ${total} · page ${page} of ${pages}`),
        page < pages ? el("a", { href: href({ state, owner, page: page + 1 }), class: "button", rel: "next" }, "Older →") : el("span"),
      );
      status.textContent = "updated " + new Date().toLocaleTimeString();
    } catch (e) {
      if (stopped) return;
      errBox.replaceChildren(notice("error", "Cannot list the jobs: " + e.message));
    }
    schedule();
  }
  function schedule() {
    if (!stopped) timer = setTimeout(refresh, POLL_MS);
  }
  refresh();
  return () => {
    stopped = true;
    if (timer) clearTimeout(timer);
  };
}
