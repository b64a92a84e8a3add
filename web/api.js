// api.js — every request the dashboard makes to modelpressd.
//
// The token: when the server answers 401, the page asks for a token (app.js shows the prompt),
// keeps it in sessionStorage for this browser tab only, and sends it as
// `Authorization: Bearer …` — never in a URL, which would end up in logs and histories. A
// refused token is forgotten and asked for again. Requests that meet a 401 while the prompt is
// open wait for the same answer, then are sent again.
//
// Errors: every failed request rejects with an ApiError carrying the HTTP status and the
// server's {"error":{"code","message"}}, so pages show the server's own words.

const TOKEN_KEY = "modelpress.token";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function token() {
  try {
    return sessionStorage.getItem(TOKEN_KEY) || "";
  } catch {
    return "";
  }
}

export function setToken(t) {
  try {
    if (t) sessionStorage.setItem(TOKEN_KEY, t);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    /* storage disabled: the token lives until the page is reloaded */
  }
  memoryToken = t || "";
  for (const f of tokenListeners) f(t || "");
}

let memoryToken = "";
const currentToken = () => token() || memoryToken;
const tokenListeners = [];
export function onTokenChange(f) {
  tokenListeners.push(f);
}

// app.js installs the prompt: askToken(message) resolves with a token the person typed.
let askToken = null;
let pendingAsk = null;
export function setTokenPrompt(f) {
  askToken = f;
}

// Ask once for everyone waiting; `refused` tells whether a token was just turned down.
function needToken(refused) {
  if (!askToken) return Promise.reject(new ApiError(401, "unauthorized", "this server needs a token"));
  if (!pendingAsk) {
    const msg = refused ? "The server refused that token. Check it and try again." : "";
    pendingAsk = askToken(msg).finally(() => {
      pendingAsk = null;
    });
  }
  return pendingAsk;
}

function authHeaders() {
  const t = currentToken();
  return t ? { Authorization: "Bearer " + t } : {};
}

async function errorFrom(res) {
  let code = "http_" + res.status;
  let message = res.statusText || "HTTP " + res.status;
  try {
    const body = await res.json();
    if (body && body.error) {
      code = body.error.code || code;
      message = body.error.message || message;
    }
  } catch {
    /* not JSON: keep the status line */
  }
  return new ApiError(res.status, code, message);
}

// fetch with the token; on 401 ask for one and try again. Resolves with the Response (ok).
export async function send(path, options = {}) {
  for (let attempt = 0; ; attempt++) {
    const sent = currentToken();
    const res = await fetch(path, {
      cache: "no-store",
      ...options,
      headers: { ...(options.headers || {}), ...authHeaders() },
    });
    if (res.status === 401 && attempt < 20) {
      // A token that was sent and refused is dropped before asking again.
      if (sent && sent === currentToken()) setToken("");
      await needToken(Boolean(sent));
      continue;
    }
    if (!res.ok) throw await errorFrom(res);
    return res;
  }
}

export async function getJSON(path) {
  const res = await send(path);
  return res.json();
}

export async function del(path) {
  const res = await send(path, { method: "DELETE" });
  return { status: res.status, body: await res.json() };
}

// POST a FormData with upload progress: onProgress(sentBytes, totalBytes) while the body goes
// out, onSent() once it is all sent and the server is working. Resolves with {status, body}.
export function upload(path, form, { onProgress, onSent } = {}) {
  const once = () =>
    new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", path);
      const t = currentToken();
      if (t) xhr.setRequestHeader("Authorization", "Bearer " + t);
      xhr.responseType = "text";
      xhr.upload.addEventListener("progress", (e) => {
        if (onProgress) onProgress(e.loaded, e.lengthComputable ? e.total : 0);
      });
      xhr.upload.addEventListener("load", () => onSent && onSent());
      xhr.addEventListener("load", () => {
        let body = null;
        try {
          body = JSON.parse(xhr.responseText);
        } catch {
          /* not JSON */
        }
        resolve({ status: xhr.status, body, sentToken: t });
      });
      xhr.addEventListener("error", () =>
        reject(new ApiError(0, "network", "the connection to the server failed during the upload")),
      );
      xhr.addEventListener("abort", () => reject(new ApiError(0, "aborted", "upload aborted")));
      xhr.send(form);
    });
  return (async () => {
    // Without a token, ask a cheap question first: when the server needs one, the prompt comes
    // before the upload rather than after a whole file was sent and refused.
    if (!currentToken()) await send("/jobs?limit=1");
    for (let attempt = 0; ; attempt++) {
      const r = await once();
      if (r.status === 401 && attempt < 20) {
        if (r.sentToken && r.sentToken === currentToken()) setToken("");
        await needToken(Boolean(r.sentToken));
        continue;
      }
      if (r.status >= 200 && r.status < 300) return r;
      const e = (r.body && r.body.error) || {};
      throw new ApiError(r.status, e.code || "http_" + r.status, e.message || "HTTP " + r.status);
    }
  })();
}

// Download a file the server serves (result, report). Without a token a plain link does it;
// with one, the file is fetched with the header and handed to the browser as a blob.
export async function download(path, fallbackName) {
  const res = await send(path);
  const cd = res.headers.get("Content-Disposition") || "";
  const m = /filename="([^"]*)"/.exec(cd);
  const name = (m && m[1]) || fallbackName;
  const url = URL.createObjectURL(await res.blob());
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

export function hasToken() {
  return Boolean(currentToken());
}
