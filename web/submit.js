// submit.js — a new job: a model file, an optional dataset, and a recipe.
//
// The recipe is JSON in an editor, filled by one of the presets or written by hand. The page
// checks only that it is JSON; what the recipe means is the server's to judge, and a 400's
// message ("steps[0].quantize.bits: must be an integer from 2 to 8, got 33") is shown next to
// the editor. A dataset chosen with a recipe that has no evaluate block adds
// "evaluate": {"metric": "top1"} to it, the server's way of asking for accuracy and speed before
// and after. The form goes up as multipart (model, recipe, dataset or dataset_id) through
// XMLHttpRequest, whose upload events drive the progress bar; a 202 opens the new job's page.

import { upload, getJSON } from "./api.js";
import { el, fmtBytes, progressBar, notice } from "./ui.js";

export const PRESETS = [
  {
    id: "int8",
    name: "int8",
    what: "8-bit integers with one scale per output channel: about 4× smaller, relative error near 1 %.",
    recipe: { steps: [{ quantize: { bits: 8 } }] },
  },
  {
    id: "int4-grouped",
    name: "4-bit grouped",
    what: "4-bit integers with a scale for every 128 weights: about 7× smaller.",
    recipe: { steps: [{ quantize: { bits: 4, granularity: "group", group_size: 128 } }] },
  },
  {
    id: "prune50",
    name: "prune 50 %",
    what: "The smaller half of each layer's weights set to zero. The file keeps its size until it is quantized or packed.",
    recipe: { steps: [{ prune: { sparsity: 0.5 } }] },
  },
  {
    id: "deep-compression",
    name: "Deep Compression",
    what: "Han et al.: prune 90 %, share 16 values per layer (k-means), Huffman-code into a .mpz file.",
    recipe: { steps: [{ prune: { sparsity: 0.9 } }, { share: { clusters: 16 } }, { huffman: {} }] },
  },
  {
    id: "lowrank",
    name: "low-rank",
    what: "Each matrix as the product of two thin factors that keep a quarter of its rank.",
    recipe: { steps: [{ lowrank: { rank_ratio: 0.25 } }] },
  },
];

const pretty = (r) => JSON.stringify(r, null, 2);

export function render(main) {
  let stopped = false;
  let busy = false;

  const modelInput = el("input", { type: "file", id: "model-file", name: "model", accept: ".safetensors,.onnx", required: true });
  const datasetSelect = el("select", { id: "dataset-id", name: "dataset_id" }, el("option", { value: "" }, "none"));
  const datasetInput = el("input", { type: "file", id: "dataset-file", name: "dataset", accept: ".npz,.npy,.safetensors" });
  const datasetPick = el("div", { class: "field", hidden: true }, el("label", { for: "dataset-id" }, "Stored dataset"), datasetSelect);

  const editor = el("textarea", {
    id: "recipe",
    name: "recipe",
    rows: 14,
    spellcheck: "false",
    autocapitalize: "off",
    autocomplete: "off",
    "aria-describedby": "recipe-msg",
  });
  const editorMsg = el("div", { id: "recipe-msg", class: "editor-msg", role: "alert", "aria-live": "assertive" });
  const presetWhat = el("p", { class: "muted small", id: "preset-what" });
  const presets = el("div", { class: "presets", role: "radiogroup", "aria-label": "preset recipes" });

  function choose(id) {
    for (const input of presets.querySelectorAll("input")) input.checked = input.value === id;
    const p = PRESETS.find((x) => x.id === id);
    presetWhat.textContent = p ? p.what : "Your own recipe: steps prune, quantize, share, lowrank, huffman (see DESIGN.md).";
  }
  for (const p of [...PRESETS, { id: "custom", name: "custom" }]) {
    const input = el("input", { type: "radio", name: "preset", value: p.id, id: "preset-" + p.id });
    input.addEventListener("change", () => {
      if (p.recipe) {
        editor.value = pretty(p.recipe);
        checkJSON();
      }
      choose(p.id);
    });
    presets.append(el("label", { class: "chip", for: "preset-" + p.id }, input, p.name));
  }

  // Local check: JSON only. Returns the parsed recipe or null (with the message shown).
  function checkJSON() {
    editorMsg.className = "editor-msg";
    editorMsg.replaceChildren();
    editor.removeAttribute("aria-invalid");
    try {
      const r = JSON.parse(editor.value);
      if (!r || typeof r !== "object" || Array.isArray(r)) throw new Error("a recipe is a JSON object with \"steps\"");
      return r;
    } catch (e) {
      editorMsg.className = "editor-msg error";
      editorMsg.textContent = "Not a valid recipe: " + e.message;
      editor.setAttribute("aria-invalid", "true");
      return null;
    }
  }
  editor.addEventListener("input", () => {
    const r = checkJSON();
    const same = r && PRESETS.find((p) => JSON.stringify(p.recipe) === JSON.stringify(r));
    choose(same ? same.id : "custom");
  });

  const bar = progressBar(0, "upload progress");
  const barText = el("span", { class: "muted small", id: "upload-text" });
  const progress = el("div", { class: "upload", id: "upload-progress", hidden: true }, bar, barText);
  const formMsg = el("div", { id: "form-msg" });
  const button = el("button", { type: "submit", class: "button primary", id: "submit-button" }, "Compress");

  function setBar(sent, total) {
    const f = total > 0 ? sent / total : 0;
    const pct = Math.round(f * 100);
    bar.querySelector(".fill").style.width = pct + "%";
    bar.setAttribute("aria-valuenow", String(pct));
    barText.textContent = total > 0 ? `${fmtBytes(sent)} of ${fmtBytes(total)} (${pct} %)` : fmtBytes(sent);
  }

  const form = el(
    "form",
    { id: "submit-form", class: "submit-form", novalidate: true },
    el(
      "div",
      { class: "cols" },
      el(
        "div",
        { class: "col" },
        el("fieldset", {}, el("legend", {}, "Model"), el("div", { class: "field" }, el("label", { for: "model-file" }, "Model file (safetensors or ONNX)"), modelInput)),
        el(
          "fieldset",
          {},
          el("legend", {}, "Dataset ", el("span", { class: "muted" }, "(optional, ONNX only: accuracy and speed)")),
          datasetPick,
          el("div", { class: "field" }, el("label", { for: "dataset-file" }, "Dataset file (.npz, .npy or safetensors with x and y)"), datasetInput),
        ),
        el("fieldset", {}, el("legend", {}, "Preset recipes"), presets, presetWhat),
      ),
      el(
        "div",
        { class: "col editor" },
        el("label", { for: "recipe", class: "editor-label" }, "Recipe (JSON)"),
        editor,
        editorMsg,
      ),
    ),
    el("div", { class: "submit-row" }, button, progress),
    formMsg,
  );

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (busy) return;
    formMsg.replaceChildren();
    const recipe = checkJSON();
    const file = modelInput.files[0];
    if (!file) {
      formMsg.replaceChildren(notice("error", "Choose a model file first."));
      modelInput.focus();
      return;
    }
    if (!recipe) {
      editor.focus();
      return;
    }
    const data = new FormData();
    const withData = Boolean(datasetInput.files[0] || datasetSelect.value);
    // The server runs a dataset only through the recipe's evaluate block (and refuses one
    // without the other): choosing a dataset asks for top-1 accuracy unless the recipe says
    // otherwise. The editor shows what was sent.
    if (withData && !("evaluate" in recipe)) {
      recipe.evaluate = { metric: "top1" };
      editor.value = pretty(recipe);
    }
    data.append("recipe", editor.value);
    if (datasetInput.files[0]) data.append("dataset", datasetInput.files[0]);
    else if (datasetSelect.value) data.append("dataset_id", datasetSelect.value);
    data.append("model", file, file.name);
    busy = true;
    button.disabled = true;
    progress.hidden = false;
    setBar(0, file.size);
    try {
      const r = await upload("/jobs", data, {
        onProgress: setBar,
        onSent: () => {
          barText.textContent = "Uploaded; the server is checking the model and the recipe…";
        },
      });
      if (stopped) return;
      if (r.body && r.body.id) location.hash = "#/jobs/" + r.body.id;
    } catch (err) {
      if (stopped) return;
      progress.hidden = true;
      if (err.status === 400) {
        // The server's own words, next to the editor they are about.
        editorMsg.className = "editor-msg error server";
        editorMsg.textContent = err.message;
        editor.setAttribute("aria-invalid", "true");
      } else {
        formMsg.replaceChildren(notice("error", `The server refused the job (HTTP ${err.status || "—"}): ${err.message}`));
      }
    } finally {
      busy = false;
      button.disabled = false;
    }
  });

  main.append(el("div", { class: "page-head" }, el("h1", {}, "New job")), form);
  editor.value = pretty(PRESETS[0].recipe);
  choose(PRESETS[0].id);

  // Datasets already on the server, where it has them.
  getJSON("/datasets")
    .then((body) => {
      if (stopped) return;
      const list = Array.isArray(body) ? body : Array.isArray(body.datasets) ? body.datasets : [];
      for (const d of list) {
        if (!d || !d.id) continue;
        const label = (d.name || d.id) + (d.bytes !== undefined ? " · " + fmtBytes(d.bytes) : "");
        datasetSelect.append(el("option", { value: d.id }, label));
      }
      datasetPick.hidden = list.length === 0;
    })
    .catch(() => {
      /* no dataset API on this server: the file field is all there is */
    });

  return () => {
    stopped = true;
  };
}
