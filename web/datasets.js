// datasets.js — evaluation and calibration data on the server: the list and an upload.
//
// GET /datasets lists them (with what the server's validation found: format, samples, input
// shape, classes), the newest MAX_LISTED, saying how many there are beyond; POST /datasets takes one file (multipart field "dataset": .npz or .npy, or
// safetensors with tensors x and y, and an optional "name") with the same upload progress bar
// as a model; DELETE /datasets/<id> stops keeping one (two clicks). A server without the
// datasets API answers 404, and the page says so instead of failing.

import { getJSON, upload, del } from "./api.js";
import { el, fmtBytes, fmtTime, progressBar, notice, confirmButton } from "./ui.js";

// The most one page of GET /datasets gives.
const MAX_LISTED = 1000;

function shape(s) {
  return Array.isArray(s) ? s.join("×") : s === undefined || s === null ? "—" : String(s);
}

export function render(main) {
  let stopped = false;
  const listBox = el("div", { id: "datasets-list" }, el("p", { class: "muted" }, "Loading…"));
  const fileInput = el("input", { type: "file", id: "dataset-upload", name: "dataset", accept: ".npz,.npy,.safetensors", required: true });
  const nameInput = el("input", { type: "text", id: "dataset-name", name: "name", placeholder: "the file's name", autocomplete: "off" });
  const bar = progressBar(0, "upload progress");
  const barText = el("span", { class: "muted small" });
  const progress = el("div", { class: "upload", hidden: true }, bar, barText);
  const msg = el("div", { id: "dataset-msg" });
  const button = el("button", { type: "submit", class: "button primary" }, "Upload");
  const form = el(
    "form",
    { class: "card", id: "dataset-form", novalidate: true },
    el("h2", {}, "Upload a dataset"),
    el("p", { class: "muted small" }, "A .npz with arrays x (inputs, first axis = samples) and y (integer labels), a .npy, or safetensors with tensors x and y."),
    el("div", { class: "field" }, el("label", { for: "dataset-upload" }, "Dataset file"), fileInput),
    el("div", { class: "field" }, el("label", { for: "dataset-name" }, "Name (optional)"), nameInput),
    el("div", { class: "submit-row" }, button, progress),
    msg,
  );

  async function load() {
    let body;
    try {
      body = await getJSON("/datasets?limit=" + MAX_LISTED);
    } catch (e) {
      if (stopped) return;
      listBox.replaceChildren(
        notice("error", e.status === 404 ? "This server does not keep datasets (its version has no /datasets API)." : "Cannot list the datasets: " + e.message),
      );
      if (e.status === 404) form.hidden = true;
      return;
    }
    if (stopped) return;
    const list = Array.isArray(body) ? body : Array.isArray(body.datasets) ? body.datasets : [];
    if (list.length === 0) {
      listBox.replaceChildren(el("p", { class: "muted" }, "No datasets yet."));
      return;
    }
    const total = Number(body.total) || list.length;
    const more = total > list.length ? el("p", { class: "muted small", id: "datasets-more" }, `The newest ${list.length} of ${total} datasets; GET /datasets?offset=${list.length} lists the rest.`) : null;
    // Figures validation found may sit on the dataset or in its "info" object.
    const pick = (d, ...keys) => {
      for (const k of keys) {
        if (d[k] !== undefined && d[k] !== null) return d[k];
        if (d.info && d.info[k] !== undefined && d.info[k] !== null) return d.info[k];
      }
      return undefined;
    };
    const head = ["Name", "Format", "Samples", "Input shape", "Classes", "Size", "Owner", "Uploaded", "Id", ""];
    listBox.replaceChildren(
      el(
        "div",
        { class: "table-wrap" },
        el(
          "table",
          { class: "datasets cards" },
          el("thead", {}, el("tr", {}, head.map((h) => el("th", { scope: "col" }, h)))),
          el(
            "tbody",
            {},
            list.map((d) =>
              el(
                "tr",
                { "data-dataset": d.id },
                el("td", { "data-label": "Name", class: "dataset-name" }, d.name || "—"),
                el("td", { "data-label": "Format" }, pick(d, "format") ?? "—"),
                el("td", { "data-label": "Samples", class: "num" }, pick(d, "n_samples", "samples") ?? "—"),
                el("td", { "data-label": "Input shape" }, shape(pick(d, "x_shape", "shape"))),
                el("td", { "data-label": "Classes", class: "num" }, pick(d, "n_classes", "classes") ?? "—"),
                el("td", { "data-label": "Size", class: "num" }, fmtBytes(d.bytes)),
                el("td", { "data-label": "Owner" }, d.owner || "—"),
                el("td", { "data-label": "Uploaded" }, fmtTime(d.created_at)),
                el("td", { "data-label": "Id", class: "mono small", title: d.id || "" }, d.id ? String(d.id).slice(0, 12) : "—"),
                el(
                  "td",
                  {},
                  confirmButton("Delete", "Click again to delete", "danger delete small", async () => {
                    try {
                      await del("/datasets/" + encodeURIComponent(d.id));
                      load();
                    } catch (e) {
                      msg.replaceChildren(notice("error", "Cannot delete the dataset: " + e.message));
                    }
                  }),
                ),
              ),
            ),
          ),
        ),
      ),
      ...(more ? [more] : []),
    );
  }

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    msg.replaceChildren();
    const file = fileInput.files[0];
    if (!file) {
      msg.replaceChildren(notice("error", "Choose a file first."));
      return;
    }
    const data = new FormData();
    if (nameInput.value.trim()) data.append("name", nameInput.value.trim());
    data.append("dataset", file, file.name);
    button.disabled = true;
    progress.hidden = false;
    const setBar = (sent, total) => {
      const pct = total > 0 ? Math.round((sent / total) * 100) : 0;
      bar.querySelector(".fill").style.width = pct + "%";
      bar.setAttribute("aria-valuenow", String(pct));
      barText.textContent = total > 0 ? `${fmtBytes(sent)} of ${fmtBytes(total)} (${pct} %)` : fmtBytes(sent);
    };
    setBar(0, file.size);
    try {
      const r = await upload("/datasets", data, { onProgress: setBar });
      if (stopped) return;
      msg.replaceChildren(notice("ok", "Stored " + ((r.body && (r.body.name || r.body.id)) || file.name) + "."));
      form.reset();
      load();
    } catch (err) {
      if (stopped) return;
      msg.replaceChildren(notice("error", `The server refused the dataset (HTTP ${err.status || "—"}): ${err.message}`));
    } finally {
      progress.hidden = true;
      button.disabled = false;
    }
  });

  main.append(el("div", { class: "page-head" }, el("h1", {}, "Datasets")), listBox, form);
  load();
  return () => {
    stopped = true;
  };
}
