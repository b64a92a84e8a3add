// app.js — the dashboard's entry: hash routes, the navigation, and the token prompt.
//
// Routes (the page is one document; the server serves only / and /static/…):
//   #/jobs[?state=…&owner=…&page=N]  the job history      (jobs.js)
//   #/jobs/<id>                      one job              (job.js)
//   #/submit                         a new job            (submit.js)
//   #/datasets                       evaluation data      (datasets.js)
// Each page's render(main, …) returns a function that stops its timers; it is called before
// the next page is drawn, so a page that is gone never polls.

import { el } from "./ui.js";
import { setTokenPrompt, setToken, hasToken, onTokenChange } from "./api.js";
import * as jobs from "./jobs.js";
import * as job from "./job.js";
import * as submit from "./submit.js";
import * as datasets from "./datasets.js";

const main = document.getElementById("main");
let stop = null;

function parseHash() {
  const h = location.hash.replace(/^#/, "") || "/jobs";
  const [path, query] = h.split("?");
  return { parts: path.split("/").filter(Boolean), params: new URLSearchParams(query || "") };
}

function setActive(page) {
  for (const a of document.querySelectorAll("#nav a")) {
    a.classList.toggle("active", a.dataset.page === page);
    if (a.dataset.page === page) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
}

function route() {
  if (stop) stop();
  stop = null;
  const { parts, params } = parseHash();
  main.replaceChildren();
  window.scrollTo(0, 0);
  if (parts[0] === "jobs" && parts[1]) {
    setActive("jobs");
    stop = job.render(main, parts[1]);
  } else if (parts[0] === "submit") {
    setActive("submit");
    stop = submit.render(main);
  } else if (parts[0] === "datasets") {
    setActive("datasets");
    stop = datasets.render(main);
  } else {
    setActive("jobs");
    stop = jobs.render(main, params);
  }
}

// ---- the token prompt -------------------------------------------------------------------
// A <dialog> of the page (not window.prompt): the token is typed into a password field, kept
// in sessionStorage by api.js, and every request that met the 401 goes on with it.

const dialog = document.getElementById("token-dialog");
const form = document.getElementById("token-form");
const input = document.getElementById("token-input");
const why = document.getElementById("token-why");
let resolveToken = null;

setTokenPrompt((message) => {
  why.textContent = message || "This server needs an access token. Ask its administrator for one (modelpressd token add NAME).";
  why.classList.toggle("error", Boolean(message));
  input.value = "";
  if (!dialog.open) dialog.showModal();
  input.focus();
  return new Promise((resolve) => {
    resolveToken = resolve;
  });
});

form.addEventListener("submit", (e) => {
  e.preventDefault();
  const t = input.value.trim();
  if (!t) {
    why.textContent = "Type the token first.";
    why.classList.add("error");
    return;
  }
  setToken(t);
  dialog.close();
  if (resolveToken) resolveToken(t);
  resolveToken = null;
});
// Escape would leave requests waiting forever: keep the prompt until a token is given.
dialog.addEventListener("cancel", (e) => e.preventDefault());

function drawWho() {
  const who = document.getElementById("who");
  who.replaceChildren();
  if (hasToken()) {
    who.append(
      el("span", { class: "muted" }, "signed in with a token "),
      el(
        "button",
        {
          type: "button",
          class: "link",
          onclick: () => {
            setToken("");
            route();
          },
        },
        "forget token",
      ),
    );
  }
}
onTokenChange(drawWho);
drawWho();

// The datasets page appears once the server has the API (GET /datasets is not 404).
async function probeDatasets() {
  try {
    const headers = hasToken() ? { Authorization: "Bearer " + sessionStorage.getItem("modelpress.token") } : {};
    const res = await fetch("/datasets", { cache: "no-store", headers });
    document.querySelector('#nav a[data-page="datasets"]').hidden = res.status === 404 || res.status === 405;
  } catch {
    /* offline: leave the link as it is */
  }
}

window.addEventListener("hashchange", route);
probeDatasets();
route();
