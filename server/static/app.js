// Watt's page: uses only the HTTP API (README "watt serve"). Every text from the server is
// set with textContent, never parsed as HTML.

const TOKEN_KEY = "watt-token";
const $ = (id) => document.getElementById(id);

const state = {
  token: null,
  session: null,
  seen: new Set(), // seqs of the current session already drawn
  follow: null, // AbortController of the session's event stream
  following: false, // that stream is open
  lastSeq: 0,
};

// ---- token ---------------------------------------------------------------------------------
function takeToken() {
  const hash = new URLSearchParams(location.hash.slice(1));
  if (hash.get("token")) {
    sessionStorage.setItem(TOKEN_KEY, hash.get("token"));
    history.replaceState(null, "", location.pathname + location.search);
  }
  state.token = sessionStorage.getItem(TOKEN_KEY);
  $("token-box").hidden = Boolean(state.token);
}

function needToken(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  state.token = null;
  $("token-box").hidden = false;
  status(message, true);
}

// ---- the API -------------------------------------------------------------------------------
async function api(path, options = {}) {
  const headers = { ...(options.headers || {}), Authorization: `Bearer ${state.token}` };
  const response = await fetch(path, { ...options, headers });
  if (response.status === 401) {
    needToken("the token was refused: type it again");
    throw new Error("unauthorized");
  }
  return response;
}

async function errorText(response) {
  try {
    const body = await response.json();
    return body.error ? body.error.message : `HTTP ${response.status}`;
  } catch {
    return `HTTP ${response.status}`;
  }
}

// Server-Sent Events from a fetch response (EventSource cannot POST or send a token).
async function* sseEvents(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const message = { id: null, event: "message", data: [] };
      for (const line of block.split("\n")) {
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const val = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "data") message.data.push(val);
        else if (field === "id") message.id = val;
        else if (field === "event") message.event = val;
      }
      if (message.data.length) {
        try {
          yield { ...message, data: JSON.parse(message.data.join("\n")) };
        } catch {
          /* not JSON: not ours */
        }
      }
    }
  }
}

// ---- drawing -------------------------------------------------------------------------------
function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function status(text, isError = false) {
  const node = $("status");
  node.textContent = text;
  node.className = isError ? "error" : "";
}

const WAT_TOKEN = /(;;[^\n]*)|("(?:[^"\\]|\\.)*")|(\$[\w.\-]+)|(\b-?\d+\b)|(\b[a-z][a-z0-9_]*(?:\.[a-z0-9_]+)+\b|\b(?:local|func|param|result|block|loop|if|then|else|end|br|br_if|call|return|argv|arg|check|resv|answer|module|export|import)\b)/g;

function highlight(source) {
  const pre = el("pre", "program");
  let last = 0;
  for (const m of source.matchAll(WAT_TOKEN)) {
    if (m.index > last) pre.append(source.slice(last, m.index));
    const kind = m[1] ? "comment" : m[2] ? "string" : m[3] ? "var" : m[4] ? "number" : "keyword";
    pre.append(el("span", `tok-${kind}`, m[0]));
    last = m.index + m[0].length;
  }
  pre.append(source.slice(last));
  return pre;
}

function turnCard(entry) {
  const id = `turn-${entry.turn}`;
  let card = document.getElementById(id);
  if (!card) {
    card = el("article", "turn");
    card.id = id;
    const head = el("div", "turn-head");
    head.append(el("div", "task", entry.task || ""), el("span", "badge state-running", "running"));
    card.append(head, el("div", "steps"));
    $("timeline").append(card);
  }
  return card;
}

function stepBox(card, entry) {
  const id = `${card.id}-step-${entry.step}`;
  let box = document.getElementById(id);
  if (!box) {
    box = el("section", "step");
    box.id = id;
    box.append(el("div", "step-head", `step ${entry.step}`));
    card.querySelector(".steps").append(box);
  }
  return box;
}

function figures(parts) {
  return el("div", "figures", parts.filter(Boolean).join(" · "));
}

function usageText(usage) {
  if (!usage) return "";
  return `tokens ${usage.input ?? 0} in / ${usage.output ?? 0} out${usage.estimated ? " (estimated)" : ""}`;
}

function ms(value) {
  return typeof value === "number" ? `${value.toFixed(1)} ms` : "";
}

const DRAW = {
  turn_start(card, e) {
    card.querySelector(".task").textContent = e.task || "";
  },
  thinking(card, e) {
    const box = stepBox(card, e);
    if (e.text) box.append(el("div", "reasoning", e.text));
    const cost = typeof e.cost === "number" ? `$${e.cost.toFixed(6)}` : "";
    box.append(figures([`model ${ms(e.model_ms)}`, usageText(e.usage), cost]));
  },
  tool_start(card, e) {
    const box = stepBox(card, e);
    const args = (e.args || []).map((a) => JSON.stringify(a)).join(", ");
    const call = e.action === "catalog" ? `${e.name}(${args})` : `wat program${args ? ` (${args})` : ""}`;
    box.append(el("div", "call", call));
    if (e.program) box.append(highlight(e.program));
  },
  tool_result(card, e) {
    const box = stepBox(card, e);
    box.classList.add(e.ok ? "ok" : "failed");
    const statusText = e.status === null || e.status === undefined ? "did not run" : `status ${e.status}${e.status_name ? " " + e.status_name : ""}`;
    const line = e.ok ? `ok · ${statusText}` : `FAILED · ${statusText}${e.error_type ? " · " + e.error_type : ""}`;
    box.append(el("div", `result-line ${e.ok ? "ok" : "failed"}`, line));
    if (!e.ok && (e.failure || e.error)) box.append(el("div", "result-line failed", e.failure || e.error));
    if ((e.results || []).length) box.append(el("pre", "results", e.results.join("\n")));
    if ((e.debug || []).length) box.append(el("pre", "results", e.debug.map((d) => `debug: ${d}`).join("\n")));
    const t = e.timings || {};
    const total = Object.values(t).reduce((a, b) => a + (typeof b === "number" ? b : 0), 0);
    box.append(figures([`fuel ${e.fuel_used ?? 0}`, `time ${ms(total)}`, e.cache ? `cache ${e.cache}` : ""]));
  },
  retry(card, e) {
    stepBox(card, e).append(el("div", "notice", `retry ${e.attempt}: ${e.reason}`));
  },
  error(card, e) {
    card.append(el("div", "notice error", `${e.error_type || "error"}: ${e.message}`));
  },
  guard(card, e) {
    card.append(el("div", "notice error", `blocked by the input guard: ${e.category}`));
  },
  response(card, e) {
    const answer = el("div", "answer", e.text);
    answer.dataset.turn = String(e.turn);
    card.append(answer);
  },
  turn_end(card, e) {
    const badge = card.querySelector(".badge");
    badge.textContent = e.state;
    badge.className = `badge state-${e.state}`;
    const cost = typeof e.cost === "number" ? `cost $${e.cost.toFixed(6)}` : "";
    card.append(figures([usageText(e.usage), cost, e.reason || ""]));
  },
};

function draw(entry) {
  if (typeof entry.seq !== "number") {
    $("timeline").append(el("div", "notice error", entry.message || "the turn could not run"));
    return;
  }
  if (state.seen.has(entry.seq)) return;
  state.seen.add(entry.seq);
  state.lastSeq = Math.max(state.lastSeq, entry.seq);
  const drawer = DRAW[entry.kind];
  if (drawer) drawer(turnCard(entry), entry);
  const timeline = $("timeline");
  timeline.scrollTop = timeline.scrollHeight;
}

// ---- sessions ------------------------------------------------------------------------------
async function loadSessions() {
  const response = await api("/v1/sessions");
  if (!response.ok) return status(await errorText(response), true);
  const { sessions } = await response.json();
  const list = $("sessions");
  list.replaceChildren();
  for (const s of sessions) {
    const item = el("li");
    const button = el("button", s.name === state.session ? "current" : "", s.name);
    button.type = "button";
    button.append(el("div", "meta", `${s.turns} turn${s.turns === 1 ? "" : "s"}${s.running ? " · running" : ""}`));
    button.addEventListener("click", () => openSession(s.name));
    item.append(button);
    list.append(item);
  }
  return sessions;
}

async function follow(name) {
  if (state.follow) state.follow.abort();
  const controller = new AbortController();
  state.follow = controller;
  state.following = true;
  try {
    const response = await api(`/v1/sessions/${encodeURIComponent(name)}/events?after=${state.lastSeq}`, { signal: controller.signal });
    if (response.status === 404) return; // no turn yet: followed after the first one
    if (!response.ok) return status(await errorText(response), true);
    for await (const message of sseEvents(response)) draw(message.data);
  } catch (err) {
    if (err.name !== "AbortError" && err.message !== "unauthorized") status(`event stream: ${err.message}`, true);
  } finally {
    if (state.follow === controller) state.following = false;
  }
}

function openSession(name) {
  state.session = name;
  state.seen = new Set();
  state.lastSeq = 0;
  $("timeline").replaceChildren();
  $("session-title").textContent = `session ${name}`;
  localStorage.setItem("watt-session", name);
  follow(name);
  loadSessions();
}

// ---- sending -------------------------------------------------------------------------------
async function send(task) {
  const name = state.session;
  $("send").disabled = true;
  status("running…");
  try {
    const response = await api(`/v1/sessions/${encodeURIComponent(name)}/turns`, {
      method: "POST",
      headers: { "Content-Type": "application/json", "Idempotency-Key": crypto.randomUUID() },
      body: JSON.stringify({ task }),
    });
    if (!response.ok) return status(await errorText(response), true);
    for await (const message of sseEvents(response)) draw(message.data);
    status("");
  } catch (err) {
    if (err.message !== "unauthorized") status(`turn: ${err.message}`, true);
  } finally {
    $("send").disabled = false;
    if (!state.following && state.session === name) follow(name);
    loadSessions();
  }
}

function wire() {
  $("token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("token-input").value.trim());
    $("token-input").value = "";
    takeToken();
    start();
  });
  $("new-session").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const name = $("new-session-name").value.trim();
    if (name) openSession(name);
    $("new-session-name").value = "";
  });
  const task = $("task");
  task.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      $("chat").requestSubmit();
    }
  });
  $("chat").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const text = task.value.trim();
    if (!text || !state.token || $("send").disabled) return;
    task.value = "";
    send(text);
  });
}

async function start() {
  if (!state.token) return;
  try {
    const sessions = await loadSessions();
    if (!sessions) return;
    status("");
    const remembered = localStorage.getItem("watt-session");
    const name = remembered || (sessions[0] && sessions[0].name) || "web";
    openSession(name);
  } catch (err) {
    if (err.message !== "unauthorized") status(err.message, true);
  }
}

takeToken();
wire();
start();
