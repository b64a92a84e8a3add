// dashboard.js — the dashboard driven in Debian's Chromium (headless) by playwright-core,
// against a real modelpressd that test_dashboard.sh started on loopback.
//
//   node dashboard.js open URL ART FIXTURE BIG XSS MLP DATA
//                                                     auth off: submit, succeed, charts,
//                                                     filters, a dataset uploaded and an ONNX
//                                                     model evaluated on it, a refused recipe,
//                                                     cancel, XSS, paging, delete
//   node dashboard.js auth URL ART FIXTURE TOKEN      auth on: the token prompt, then the same
//                                                     form, charts and a download with it
// Every figure the page shows is compared with what the API says (GET /jobs/<id>, /report),
// and bar lengths with the values they stand for. Screenshots (desktop 1280×900, phone
// 390×844) go to ART. Any JavaScript dialog, page error or failed request (but the 400s
// and 401s the test provokes) fails the run. Exits 0 when every check passed, 1 otherwise.

"use strict";
const { chromium } = require("playwright-core");
const fs = require("fs");
const os = require("os");
const path = require("path");

const [phase, URL_, ART, ...rest] = process.argv.slice(2);
const DESKTOP = { width: 1280, height: 900 };
const PHONE = { width: 390, height: 844 };
const LIMIT_MS = 480000;

let passed = 0;
function check(cond, what, detail) {
  if (!cond) {
    const e = new Error(what + (detail !== undefined ? ": " + JSON.stringify(detail) : ""));
    e.check = true;
    throw e;
  }
  passed++;
  console.log("ok " + passed + " - " + what);
}

async function api(p, tok) {
  const res = await fetch(URL_ + p, { headers: tok ? { Authorization: "Bearer " + tok } : {} });
  const body = await res.json();
  return { status: res.status, body };
}

// Launch Debian's Chromium with a new empty profile (removed at the end).
async function launch() {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "mp-chromium-"));
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
    viewport: DESKTOP,
    acceptDownloads: true,
  });
  return { ctx, profile };
}

// Watch a page for what must never happen: dialogs, uncaught errors, failed requests.
function watch(page, problems, dialogs) {
  page.on("dialog", (d) => {
    dialogs.push(d.type() + ": " + d.message());
    d.dismiss().catch(() => {});
  });
  page.on("pageerror", (e) => problems.push("page error: " + e.message));
  page.on("response", (r) => {
    const u = new URL(r.url());
    if (r.status() >= 400 && r.status() !== 401 && r.status() !== 400) {
      problems.push(`HTTP ${r.status()} for ${u.pathname}`);
    }
  });
  page.on("requestfailed", (r) => {
    const u = new URL(r.url());
    if (!u.protocol.startsWith("blob")) problems.push("request failed: " + u.pathname + " " + (r.failure() || {}).errorText);
  });
}

// Charts redraw to their box's width (ResizeObserver) once the viewport changes: wait for it.
async function fitCharts(page) {
  await page.waitForFunction(
    () =>
      [...document.querySelectorAll(".chart-svg")].every(
        (svg) => Number(svg.getAttribute("width")) === Math.max(200, Math.floor(svg.parentElement.clientWidth)),
      ),
    null,
    { timeout: 10000 },
  );
}

async function shot(page, name, size) {
  await page.setViewportSize(size);
  await fitCharts(page);
  const file = path.join(ART, name + ".png");
  await page.screenshot({ path: file, fullPage: true });
  // Nothing may stick out sideways: the page is as wide as the screen.
  const over = await page.evaluate(() => document.documentElement.scrollWidth);
  check(over <= size.width, `${name}: the page is ${size.width} px wide, nothing wider`, over);
  await page.setViewportSize(DESKTOP);
}

// Open the submit page, choose the model, a stored dataset and a preset (or type a recipe), send it, and return
// the new job's id from the URL the page moves to.
async function submitJob(page, model, { preset, recipe, datasetId, expectJob = true }) {
  await page.goto(URL_ + "/#/submit");
  await page.waitForSelector("#submit-form");
  await page.setInputFiles("#model-file", model);
  if (datasetId) {
    await page.waitForSelector(`#dataset-id option[value="${datasetId}"]`, { state: "attached" });
    check(await page.isVisible("#dataset-id"), "the submit page offers the stored dataset");
    await page.selectOption("#dataset-id", datasetId);
  }
  if (preset) await page.click(`label[for="preset-${preset}"]`);
  if (recipe !== undefined) await page.fill("#recipe", recipe);
  await page.click("#submit-button");
  if (!expectJob) return null;
  await page.waitForURL(/#\/jobs\/[0-9a-f]{32}$/, { timeout: 60000 });
  return page.url().split("/").pop();
}

async function waitState(page, states, timeout = 90000) {
  const sel = states.map((s) => `.page-head .badge[data-state="${s}"]`).join(", ");
  await page.waitForSelector(sel, { timeout });
  return page.getAttribute(".page-head .badge", "data-state");
}

// The four per-tensor charts: one bar per compressed tensor, in the report's order, each as
// long as its value says (relative to the longest bar of its chart, so the axis maximum the
// page chose does not matter).
async function checkTensorCharts(page, report, label) {
  const tensors = report.tensors;
  await page.waitForSelector('figure[data-chart="bytes"] g.bar');
  const charts = await page.evaluate(() =>
    [...document.querySelectorAll("#tensors figure.chart")].map((f) => ({
      id: f.dataset.chart,
      bars: [...f.querySelectorAll("g.bar")].map((g) => ({
        name: g.dataset.name,
        label: g.querySelector("text.label").textContent,
        title: g.querySelector("title").textContent,
        rects: [...g.querySelectorAll("rect")].map((r) => ({ cls: r.getAttribute("class"), w: Number(r.getAttribute("width")) })),
      })),
    })),
  );
  check(
    JSON.stringify(charts.map((c) => c.id)) === JSON.stringify(["sparsity", "bits_per_weight", "rel_error", "bytes"]),
    `${label}: four per-tensor charts`,
    charts.map((c) => c.id),
  );
  for (const c of charts) {
    check(c.bars.length === tensors.length, `${label}: chart ${c.id} has ${tensors.length} bars`, c.bars.length);
    check(
      c.bars.every((b, i) => b.name === tensors[i].name && b.title.startsWith(tensors[i].name + ": ")),
      `${label}: chart ${c.id} names its bars as the report does`,
      c.bars.map((b) => b.name),
    );
    const pairs = [];
    c.bars.forEach((b, i) => {
      const t = tensors[i];
      if (c.id === "bytes") {
        pairs.push([b.rects.find((r) => r.cls === "before").w, t.bytes_before]);
        pairs.push([b.rects.find((r) => r.cls === "after").w, t.bytes_after]);
      } else {
        pairs.push([b.rects[0].w, t[c.id]]);
      }
    });
    const [wMax, vMax] = pairs.reduce((a, p) => (p[1] > a[1] ? p : a));
    const bad = pairs.filter(([w, v]) => Math.abs(w - (v / vMax) * wMax) > 0.01);
    check(wMax > 50 && bad.length === 0, `${label}: chart ${c.id} bar lengths in proportion to the values`, bad);
  }
}

async function phaseOpen(page, dialogs, fixture, big, xss, mlp, data) {
  // ---- the fixture with the int8 preset, through the form ----------------------------------
  await page.goto(URL_ + "/#/submit");
  await page.waitForSelector("#recipe");
  await page.click('label[for="preset-deep-compression"]');
  let text = await page.inputValue("#recipe");
  check(
    JSON.stringify(JSON.parse(text)) === '{"steps":[{"prune":{"sparsity":0.9}},{"share":{"clusters":16}},{"huffman":{}}]}',
    "the Deep Compression preset fills the editor",
    text,
  );
  const id = await submitJob(page, fixture, { preset: "int8" });
  const job0 = (await api("/jobs/" + id)).body;
  check(JSON.stringify(job0.recipe) === '{"steps":[{"quantize":{"bits":8}}]}', "the int8 preset is what the server got", job0.recipe);
  check(job0.model.name === "fmnist_mlp.safetensors" && job0.model.bytes === fs.statSync(fixture).size, "the model went up whole", job0.model);
  check((await waitState(page, ["succeeded", "failed"])) === "succeeded", "the job page shows the job reach succeeded");
  const job = (await api("/jobs/" + id)).body;
  const report = (await api(`/jobs/${id}/report`)).body;
  check(report.tensors.length === 3, "the fixture has 3 compressed tensors", report.tensors.length);
  await checkTensorCharts(page, report, "fixture");
  const stats = await page.evaluate(() =>
    Object.fromEntries([...document.querySelectorAll(".stat")].map((s) => [s.dataset.stat, s.querySelector(".stat-value").textContent])),
  );
  check(stats.compression_ratio === job.metrics.compression_ratio.toFixed(2) + "×", "the ratio shown is the job's", [stats.compression_ratio, job.metrics.compression_ratio]);
  check(stats.tensors === `3 of ${job.metrics.n_tensors}`, "tensors compressed: 3 of all", stats.tensors);
  const stageBars = await page.$$eval('figure[data-chart="stages"] g.bar', (g) => g.map((x) => x.dataset.name));
  check(JSON.stringify(stageBars) === '["original","1. quantize"]', "the size chart has the original and one step", stageBars);
  const links = await page.$$eval("a[data-download]", (a) => a.map((x) => x.getAttribute("href")));
  check(JSON.stringify(links) === JSON.stringify([job.links.result, job.links.report]), "download links for the result and the report", links);
  await shot(page, "job-desktop", DESKTOP);
  await shot(page, "job-phone", PHONE);
  // The phone layout stacks names over bars; the bars are still 3 per chart.
  await page.setViewportSize(PHONE);
  await fitCharts(page);
  const phoneBars = await page.$$eval("#tensors figure.chart", (f) => f.map((x) => [x.querySelectorAll("g.bar").length, Number(x.querySelector("svg").getAttribute("width"))]));
  check(phoneBars.every(([n, w]) => n === 3 && w <= 390), "on a phone each chart still has 3 bars and fits the screen", phoneBars);
  await page.setViewportSize(DESKTOP);

  // ---- the jobs page: the row, the filters ----------------------------------------------
  await page.goto(URL_ + "/#/jobs");
  await page.waitForSelector(`tr[data-job="${id}"]`);
  const row = await page.$eval(`tr[data-job="${id}"]`, (tr) => ({
    state: tr.querySelector(".badge").dataset.state,
    model: tr.querySelector(".model-name").textContent,
    ratio: tr.querySelector(".ratio").textContent,
    recipe: tr.querySelector(".recipe").textContent,
  }));
  check(
    row.state === "succeeded" && row.model === "fmnist_mlp.safetensors" && row.ratio === job.metrics.compression_ratio.toFixed(2) + "×" && row.recipe === "int8",
    "the jobs page row: state, model, ratio, recipe",
    row,
  );
  await page.click('.filters a[data-state="failed"]');
  await page.waitForSelector("tr.empty");
  check((await page.textContent("tr.empty")).startsWith("No failed jobs"), "filtered by failed: no rows");
  await page.click('.filters a[data-state="succeeded"]');
  await page.waitForSelector(`tr[data-job="${id}"]`);
  check(page.url().endsWith("#/jobs?state=succeeded"), "the filter is in the URL", page.url());
  await page.fill("#owner-input", "nobody");
  await page.press("#owner-input", "Enter");
  await page.waitForSelector("tr.empty");
  check(page.url().endsWith("#/jobs?state=succeeded&owner=nobody"), "the owner filter is in the URL and leaves no rows", page.url());

  // ---- a dataset through its page, then an ONNX classifier evaluated on it ------------------
  check(await page.isVisible('#nav a[data-page="datasets"]'), "the navigation offers the datasets page");
  await page.goto(URL_ + "/#/datasets");
  await page.setInputFiles("#dataset-upload", data);
  await page.fill("#dataset-name", "<b>eval</b> set");
  await page.click("#dataset-form button[type=submit]");
  await page.waitForSelector("#dataset-msg .notice.ok", { timeout: 60000 });
  const list = (await api("/datasets")).body.datasets;
  const d = list.find((x) => x.name === "<b>eval</b> set");
  check(
    d !== undefined && d.samples === 256 && JSON.stringify(d.x_shape) === "[256,16]" && d.n_classes === 4 && d.has_labels,
    "the dataset went up through the page, named as typed: 256 labelled samples of 16 inputs, 4 classes",
    list,
  );
  await page.waitForSelector(`tr[data-dataset="${d.id}"]`);
  const cells = await page.$$eval(`tr[data-dataset="${d.id}"] td`, (td) => td.map((c) => c.textContent));
  check(
    JSON.stringify(cells.slice(0, 5)) === JSON.stringify(["<b>eval</b> set", d.format, "256", "256×16", "4"]),
    "the list shows its name (as text), format, samples, input shape and classes",
    cells,
  );
  check((await page.$("#datasets-more")) === null, "one dataset: no note of more beyond the list");
  await shot(page, "datasets-desktop", DESKTOP);
  await shot(page, "datasets-phone", PHONE);

  const idE = await submitJob(page, mlp, { preset: "int8", datasetId: d.id });
  const jobE0 = (await api("/jobs/" + idE)).body;
  check(
    JSON.stringify(jobE0.recipe) === '{"steps":[{"quantize":{"bits":8}}],"evaluate":{"metric":"top1"}}' && jobE0.dataset && jobE0.dataset.id === d.id,
    "with a dataset chosen, the int8 preset goes up with an evaluate block and the job names the dataset",
    [jobE0.recipe, jobE0.dataset],
  );
  check((await waitState(page, ["succeeded", "failed"])) === "succeeded", "the evaluated job reaches succeeded");
  const jobE = (await api("/jobs/" + idE)).body;
  const ev = (await api(`/jobs/${idE}/report`)).body.evaluation;
  check(
    ev && ev.samples === 256 && Math.abs(ev.before.accuracy * 256 - 234) <= 1 && ev.after.accuracy > 0.8 && ev.agreement > 0.9,
    "the report's evaluation: 256 samples, the original right on 234 of them as NumPy finds, int8 within reach",
    ev,
  );
  check(JSON.stringify(jobE.metrics.evaluation) === JSON.stringify(ev), "the job's metrics carry the report's evaluation", jobE.metrics.evaluation);
  check((await page.textContent("#job-dataset a")) === d.id.slice(0, 12), "the job page names its dataset");
  await page.waitForSelector("#evaluation table");
  // The page's formats: percentages with 2 decimals, latencies with 3 significant digits in µs
  // below a millisecond, changes in percentage points with a sign, speed-ups with 2 decimals.
  const trim = (t) => (t.includes(".") ? t.replace(/0+$/, "").replace(/\.$/, "") : t);
  const sig = (x) => String(Number(x.toPrecision(3)));
  const ms = (x) => (x < 1 ? sig(x * 1000) + " µs" : x < 1000 ? sig(x) + " ms" : sig(x / 1000) + " s");
  const pct = (x) => (x * 100).toFixed(2) + " %";
  const pp = (x) => (x > 0 ? "+" : x < 0 ? "−" : "±") + Math.abs(x).toFixed(2) + " pp";
  const speed = (x) => trim(x.toFixed(2)) + "× speed-up";
  const delta = pp((ev.after.accuracy - ev.before.accuracy) * 100);
  const rows = await page.$$eval("#evaluation tbody tr", (trs) => trs.map((tr) => [...tr.children].map((c) => c.textContent)));
  const want = [
    ["Top-1 accuracy", pct(ev.before.accuracy), pct(ev.after.accuracy), delta],
    ["Latency, batch 1", ms(ev.before.latency_ms), ms(ev.after.latency_ms), speed(ev.speedup)],
    ["Latency, batch 32", ms(ev.before.latency_ms_b32), ms(ev.after.latency_ms_b32), speed(ev.speedup_b32)],
  ];
  check(JSON.stringify(rows) === JSON.stringify(want), "the job page: accuracy, latencies and speed-ups before and after as the report has them", { rows, want });
  const extra = await page.textContent("#evaluation p.muted");
  const wantExtra = `top-1 agreement with the original ${pct(ev.agreement)} · output SNR ${trim(ev.output_snr_db.toFixed(1))} dB`;
  check(extra === wantExtra, "the job page: agreement and output SNR as the report has them", [extra, wantExtra]);
  const evBars = await page.$$eval("#evaluation figure.chart", (f) => f.map((x) => x.dataset.chart + ":" + x.querySelectorAll("g.bar").length));
  check(evBars.join() === "eval-accuracy:1,eval-latency:2", "before/after charts of accuracy (1 bar) and latency (2 bars)", evBars);
  await shot(page, "job-evaluation-desktop", DESKTOP);
  await shot(page, "job-evaluation-phone", PHONE);
  await page.goto(URL_ + "/#/jobs");
  await page.waitForSelector(`tr[data-job="${idE}"]`);
  const rowE = await page.$eval(`tr[data-job="${idE}"]`, (tr) => [tr.querySelector(".model-name").textContent, tr.querySelector(".delta").textContent]);
  check(rowE[0] === "mlp.onnx" && rowE[1] === delta, "the jobs page shows the accuracy change", [rowE, delta]);
  check((await page.textContent(`tr[data-job="${id}"] .delta`)) === "—", "a job without a dataset has no accuracy change");

  // ---- a recipe the server refuses, and one that is not JSON ------------------------------
  const before = (await api("/jobs")).body.total;
  await submitJob(page, fixture, { recipe: '{"steps":[{"quantize":{"bits":33}}]}', expectJob: false });
  await page.waitForSelector("#recipe-msg.server");
  const msg = await page.textContent("#recipe-msg");
  check(msg === "steps[0].quantize.bits: must be an integer from 2 to 8, got 33", "the server's 400 message next to the editor", msg);
  check(page.url().endsWith("#/submit") && (await api("/jobs")).body.total === before, "no job was made and the form stays");
  await shot(page, "submit-desktop", DESKTOP);
  await shot(page, "submit-phone", PHONE);
  await page.fill("#recipe", '{"steps": [');
  const local = await page.textContent("#recipe-msg");
  check(local.startsWith("Not a valid recipe: ") && (await page.isChecked("#preset-custom")), "JSON that does not parse is flagged at once, preset custom", local);

  // ---- cancel: a big model keeps the one worker busy; a second one waits behind it --------
  const watchBar = () =>
    page.evaluate(() => {
      window.__bar = [];
      const bar = document.querySelector("#upload-progress .progress");
      new MutationObserver(() => window.__bar.push(Number(bar.getAttribute("aria-valuenow")))).observe(bar, { attributes: true });
    });
  await page.goto(URL_ + "/#/submit");
  await page.waitForSelector("#submit-form");
  await page.setInputFiles("#model-file", big);
  await page.fill("#recipe", '{"steps":[{"lowrank":{"energy":0.9}}]}');
  await watchBar();
  await page.click("#submit-button");
  const seen = await page.evaluate(() =>
    new Promise((resolve) => {
      const t0 = Date.now();
      (function look() {
        if (window.__bar.includes(100) || Date.now() - t0 > 60000) resolve(window.__bar.slice());
        else setTimeout(look, 20);
      })();
    }),
  );
  check(seen.includes(100), "the upload progress bar reaches 100 %", seen.slice(-5));
  await page.waitForURL(/#\/jobs\/[0-9a-f]{32}$/, { timeout: 60000 });
  const idA = page.url().split("/").pop();
  const stA = await waitState(page, ["running", "succeeded", "failed"]);
  check(stA === "running", "the big job runs", stA);
  // The page follows the job: the bar moves past 0 % and names the step at work.
  await page.waitForFunction(() => parseInt((document.querySelector("#job-pct") || {}).textContent, 10) > 0, null, { timeout: 120000 });
  const live = await page.evaluate(() => [
    document.querySelector("#job-stage").textContent,
    Number(document.querySelector(".live .progress").getAttribute("aria-valuenow")),
  ]);
  check(live[0] === "stage: lowrank" && live[1] > 0 && live[1] < 100, "the progress bar moves while the job runs, with its stage", live);
  await shot(page, "job-running-desktop", DESKTOP);
  await shot(page, "job-running-phone", PHONE);
  const idB = await submitJob(page, big, { preset: "int8" });
  const stB = await waitState(page, ["queued", "running", "succeeded"]);
  check(stB === "queued" || stB === "running", "the second big job waits or runs", stB);
  await page.click(".button.cancel");
  check((await page.textContent(".button.cancel")) === "Click again to cancel", "cancel asks for a second click");
  await page.click(".button.cancel");
  check((await waitState(page, ["canceled"], 60000)) === "canceled", "the second job shows canceled");
  check((await api("/jobs/" + idB)).body.state === "canceled", "the server has it canceled");
  await page.goto(URL_ + "/#/jobs/" + idA);
  await waitState(page, ["running", "succeeded"]);
  await page.click(".button.cancel");
  await page.click(".button.cancel");
  await page.waitForSelector(".live .notice.info");
  check((await page.textContent(".live .notice.info")).startsWith("Cancel requested"), "a running job is told to stop");
  check((await waitState(page, ["canceled", "succeeded", "failed"], 90000)) === "canceled", "the running job shows canceled");
  check((await api("/jobs/" + idA)).body.state === "canceled", "the server has the running job canceled");

  // ---- names from a model file are text, never markup -------------------------------------
  const xssName = "<img src=x onerror=alert(2)>.safetensors";
  const idX = await submitJob(page, { name: xssName, mimeType: "application/octet-stream", buffer: fs.readFileSync(xss) }, { preset: "int8" });
  check((await waitState(page, ["succeeded", "failed"])) === "succeeded", "the model with hostile names compresses");
  const reportX = (await api(`/jobs/${idX}/report`)).body;
  const hostile = ["<img src=x onerror=alert(1)>", "</title><svg onload=alert(3)>"];
  check(hostile.every((n) => reportX.tensors.some((t) => t.name === n)), "the report keeps the hostile tensor names", reportX.tensors.map((t) => t.name));
  await checkTensorCharts(page, reportX, "hostile names");
  await page.click("details.tensor-table summary");
  const dom = await page.evaluate(() => ({
    title: document.querySelector("h1.model-name").textContent,
    cells: [...document.querySelectorAll("td.tensor-name")].map((td) => td.textContent),
    labels: [...document.querySelectorAll('figure[data-chart="sparsity"] text.label')].map((t) => t.textContent),
    titles: [...document.querySelectorAll('figure[data-chart="sparsity"] g.bar > title')].map((t) => t.textContent),
    injected: document.querySelectorAll("img, image, iframe, object, embed, main script, [onerror], [onload]").length,
    svgs: document.querySelectorAll("svg svg").length,
  }));
  check(dom.title === xssName, "the model's file name is shown as text", dom.title);
  // A chart label keeps the end of a long name ("…" + tail); its <title> has the whole name.
  const shown = (n, label) => label === n || (label.startsWith("…") && n.endsWith(label.slice(1)) && label.length > 8);
  check(
    hostile.every((n, i) => dom.cells[i] === n && shown(n, dom.labels[i]) && dom.titles[i].startsWith(n + ": ")),
    "the tensor names are shown as text in the table, the chart labels and their titles",
    dom,
  );
  check(dom.injected === 0 && dom.svgs === 0, "no element was made from a name", dom);
  await shot(page, "xss-job-desktop", DESKTOP);
  await page.goto(URL_ + "/#/jobs");
  await page.waitForSelector(`tr[data-job="${idX}"]`);
  check((await page.textContent(`tr[data-job="${idX}"] .model-name`)) === xssName, "the jobs page shows the file name as text");
  await shot(page, "jobs-desktop", DESKTOP);
  await shot(page, "jobs-phone", PHONE);
  await page.waitForTimeout(500);
  check(dialogs.length === 0, "no dialog ever opened", dialogs);

  // ---- paging: 20 jobs a page, newest first ----------------------------------------------------
  const small = fs.readFileSync(xss);
  const statuses = [];
  for (let i = 0; i < 18; i++) {
    const form = new FormData();
    form.append("recipe", '{"steps":[{"quantize":{"bits":8}}]}');
    form.append("model", new Blob([small]), `page-${String(i).padStart(2, "0")}.safetensors`);
    statuses.push((await fetch(URL_ + "/jobs", { method: "POST", body: form })).status);
  }
  check(statuses.every((s) => s === 202), "18 more jobs for paging accepted", statuses);
  const total = (await api("/jobs")).body.total;
  // The browser is on #/jobs already: load it afresh rather than wait for its next poll.
  await page.goto(URL_ + "/#/jobs");
  await page.reload();
  await page.waitForSelector("#page-info");
  const firstPage = await page.$$eval("tr.job-row .model-name", (a) => a.map((x) => x.textContent));
  check(
    firstPage.length === 20 && firstPage[0] === "page-17.safetensors" && (await page.textContent("#page-info")) === `1–20 of ${total} · page 1 of 2`,
    "page 1: the 20 newest jobs",
    [firstPage.length, firstPage[0], total],
  );
  await page.click('.pager a[rel="next"]');
  await page.waitForFunction(() => (document.querySelector("#page-info") || {}).textContent?.includes("page 2 of 2"));
  const secondPage = await page.$$eval("tr.job-row", (tr) => tr.map((x) => x.dataset.job));
  check(secondPage.length === total - 20 && page.url().endsWith("#/jobs?page=2"), "page 2: the rest, and the page is in the URL", [secondPage.length, total]);

  // ---- delete a finished job from its page --------------------------------------------------
  await page.goto(URL_ + "/#/jobs/" + idB);
  await waitState(page, ["canceled"]);
  await page.click(".button.delete");
  await page.click(".button.delete");
  await page.waitForURL(/#\/jobs$/);
  check((await api("/jobs/" + idB)).status === 404, "delete removes the job");
}

async function phaseAuth(ctx, page, fixture, tok) {
  await page.goto(URL_ + "/#/jobs");
  await page.waitForSelector("dialog#token-dialog[open]");
  check((await page.evaluate(() => sessionStorage.length)) === 0, "the token prompt opens on 401, nothing stored yet");
  await shot(page, "token-prompt-desktop", DESKTOP);
  await shot(page, "token-prompt-phone", PHONE);
  await page.fill("#token-input", "mpt_not_a_token");
  await page.click("#token-ok");
  await page.waitForSelector("#token-why.error");
  check((await page.textContent("#token-why")).startsWith("The server refused that token"), "a wrong token is refused and asked again");
  await page.fill("#token-input", tok);
  await page.click("#token-ok");
  await page.waitForSelector("tr.empty");
  check(!(await page.isVisible("dialog#token-dialog")), "the right token closes the prompt");
  check(
    (await page.evaluate(() => [sessionStorage.getItem("modelpress.token"), localStorage.length])).join() === tok + ",0",
    "the token is kept in sessionStorage only",
  );
  check(!(await page.isVisible("#owner-input")), "with auth on there is no owner filter (the server lists one's own jobs)");

  const id = await submitJob(page, fixture, { preset: "int8" });
  check((await waitState(page, ["succeeded", "failed"])) === "succeeded", "with a token: the job reaches succeeded");
  const job = (await api("/jobs/" + id, tok)).body;
  check(job.owner === "alice", "the job belongs to the token's user", job.owner);
  check((await page.textContent(".live")).includes("owner alice"), "the job page names the owner");
  const report = (await api(`/jobs/${id}/report`, tok)).body;
  await checkTensorCharts(page, report, "with a token");
  const [dl] = await Promise.all([page.waitForEvent("download"), page.click('a[data-download="report"]')]);
  const saved = path.join(ART, "downloaded-report.json");
  await dl.saveAs(saved);
  const got = JSON.parse(fs.readFileSync(saved, "utf8"));
  check(JSON.stringify(got) === JSON.stringify(report), "the report downloads with the token (the same JSON as the API's)");
  await shot(page, "auth-job-desktop", DESKTOP);

  await page.reload();
  await page.goto(URL_ + "/#/jobs");
  await page.waitForSelector(`tr[data-job="${id}"]`);
  check(!(await page.isVisible("dialog#token-dialog")), "after a reload the token is still there: no prompt");
  check((await page.textContent(`tr[data-job="${id}"] .owner`)) === "alice", "the jobs page shows the owner");
  // Another tab is another session: it asks again.
  const other = await ctx.newPage();
  await other.goto(URL_ + "/#/jobs");
  await other.waitForSelector("dialog#token-dialog[open]");
  check((await other.evaluate(() => sessionStorage.length)) === 0, "a new tab is a new session: it asks for the token again");
  await other.close();
  await page.click("#who button");
  await page.waitForSelector("dialog#token-dialog[open]");
  check((await page.evaluate(() => sessionStorage.getItem("modelpress.token"))) === null, "forget token clears it and asks again");
}

(async () => {
  const timer = setTimeout(() => {
    console.error("FAIL: the browser test did not finish within " + LIMIT_MS / 1000 + " s");
    process.exit(1);
  }, LIMIT_MS);
  fs.mkdirSync(ART, { recursive: true });
  const { ctx, profile } = await launch();
  const problems = [];
  const dialogs = [];
  let failed = null;
  try {
    const page = ctx.pages()[0] || (await ctx.newPage());
    page.setDefaultTimeout(30000);
    watch(page, problems, dialogs);
    if (phase === "open") await phaseOpen(page, dialogs, rest[0], rest[1], rest[2], rest[3], rest[4]);
    else if (phase === "auth") await phaseAuth(ctx, page, rest[0], rest[1]);
    else throw new Error("unknown phase " + phase);
    check(dialogs.length === 0, phase + ": no JavaScript dialog", dialogs);
    check(problems.length === 0, phase + ": no page errors and no failed requests", problems);
  } catch (e) {
    failed = e;
    try {
      const page = ctx.pages()[0];
      if (page) await page.screenshot({ path: path.join(ART, `FAILED-${phase}.png`), fullPage: true });
    } catch {
      /* the browser is gone */
    }
  } finally {
    await ctx.close().catch(() => {});
    fs.rmSync(profile, { recursive: true, force: true });
    clearTimeout(timer);
  }
  if (failed) {
    console.error("FAIL: " + (failed.check ? failed.message : failed.stack));
    if (problems.length) console.error("also seen: " + problems.join("; "));
    console.log(`${phase}: ${passed} passed, 1 failed`);
    process.exit(1);
  }
  console.log(`${phase}: ${passed} passed, 0 failed`);
})();
