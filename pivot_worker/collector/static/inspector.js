// The request inspector: a page over the debug API. Every value from the API is put in the page
// as text (textContent), never as markup, so a developer's response body cannot run in it.
"use strict";

const GREGORIAN_OFFSET_S = 62167219200; // Kazoo's "created" is in Gregorian seconds
const state = { token: "", account: "" };

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (name === "text") node.textContent = value;
    else if (name === "class") node.className = value;
    else node.setAttribute(name, value);
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

function add(parent, ...children) {
  for (const child of children) if (child) parent.append(child);
}

function say(message) {
  document.getElementById("status").textContent = message;
}

async function api(path) {
  const url = `/v2/accounts/${encodeURIComponent(state.account)}/pivot/debug${path}`;
  const response = await fetch(url, { headers: { "X-Auth-Token": state.token } });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const why = (body.data && body.data.message) || body.message || response.statusText;
    throw new Error(`${response.status}: ${why}`);
  }
  return body.data;
}

function when(created) {
  const date = new Date((created - GREGORIAN_OFFSET_S) * 1000);
  return date.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

async function loadCalls() {
  say("loading calls ...");
  const query = document.getElementById("failed-only").checked ? "?failed=true" : "";
  const rows = await api(query);
  const tbody = document.querySelector("#calls tbody");
  tbody.replaceChildren();
  for (const row of rows) {
    const result = row.failed
      ? el("td", { class: "failed", text: row.reason || "failed" })
      : el("td", { class: "ok", text: "ok" });
    const tr = el(
      "tr",
      { "data-call-id": row.call_id },
      el("td", { text: when(row.created) }),
      el("td", { text: row.call_id }),
      el("td", { class: "url", text: row.uri || "" }),
      el("td", { text: row.status_code || "-" }),
      result,
    );
    tr.addEventListener("click", () => showCall(row.call_id, tr).catch((e) => say(e.message)));
    tbody.append(tr);
  }
  say(rows.length ? `${rows.length} calls` : "no calls in the last 31 days");
}

// -- bodies, highlighted with spans whose text is set, never parsed as HTML ----------------------

function highlightJson(text) {
  let pretty = text;
  try {
    pretty = JSON.stringify(JSON.parse(text), null, 2);
  } catch (_) {
    return el("pre", { text });
  }
  const pre = el("pre", { class: "json" });
  const token = /("(?:[^"\\]|\\.)*")(\s*:)?|(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)|\b(true|false|null)\b/g;
  let last = 0;
  for (const match of pretty.matchAll(token)) {
    pre.append(pretty.slice(last, match.index));
    if (match[1] !== undefined) {
      pre.append(el("span", { class: match[2] ? "tok-key" : "tok-str", text: match[1] }));
      if (match[2]) pre.append(match[2]);
    } else if (match[3] !== undefined) {
      pre.append(el("span", { class: "tok-num", text: match[3] }));
    } else {
      pre.append(el("span", { class: "tok-lit", text: match[4] }));
    }
    last = match.index + match[0].length;
  }
  pre.append(pretty.slice(last));
  return pre;
}

function highlightXml(text) {
  const pre = el("pre", { class: "xml" });
  const tag = /<\/?[\w:.-]+|\/?>|([\w:.-]+)(=)("[^"]*"|'[^']*')/g;
  let last = 0;
  for (const match of text.matchAll(tag)) {
    pre.append(text.slice(last, match.index));
    if (match[1] !== undefined) {
      pre.append(el("span", { class: "tok-attr", text: match[1] }), match[2]);
      pre.append(el("span", { class: "tok-str", text: match[3] }));
    } else {
      pre.append(el("span", { class: "tok-tag", text: match[0] }));
    }
    last = match.index + match[0].length;
  }
  pre.append(text.slice(last));
  return pre;
}

function body(text, headers) {
  if (!text) return null;
  const type = (headers && (headers["content-type"] || "")) || "";
  const first = text.trimStart()[0];
  if (type.includes("json") || first === "{" || first === "[") return highlightJson(text);
  if (type.includes("xml") || first === "<") return highlightXml(text);
  return el("pre", { text });
}

function fields(pairs) {
  const dl = el("dl");
  for (const [name, value] of pairs) {
    if (value === undefined || value === null || value === "") continue;
    dl.append(el("dt", { text: name }), el("dd", { text: String(value) }));
  }
  return dl;
}

function headerList(headers) {
  if (!headers || !Object.keys(headers).length) return null;
  return el("details", {}, el("summary", { text: "headers" }), fields(Object.entries(headers)));
}

function params(uri, reqBody) {
  const pairs = [];
  try {
    for (const [k, v] of new URL(uri).searchParams) pairs.push([k, v]);
  } catch (_) {
    /* not a full URL: nothing to list */
  }
  if (reqBody && !reqBody.trimStart().startsWith("{")) {
    for (const [k, v] of new URLSearchParams(reqBody)) pairs.push([k, v]);
  }
  if (!pairs.length) return null;
  return el("details", { class: "params" }, el("summary", { text: `params (${pairs.length})` }), fields(pairs));
}

// -- the translated callflow as a collapsible tree --------------------------------------------

function flowTree(node, branch) {
  if (!node || typeof node !== "object") return el("span", { text: String(node) });
  const label = el("summary", {});
  if (branch !== undefined) label.append(el("span", { text: `${branch} -> ` }));
  label.append(el("span", { class: "module", text: node.module || "(no module)" }));
  const details = el("details", { class: "flow-node", open: "" }, label);
  const data = node.data || {};
  if (Object.keys(data).length) details.append(fields(Object.entries(data).map(([k, v]) => [k, typeof v === "object" ? JSON.stringify(v) : v])));
  for (const [key, child] of Object.entries(node.children || {})) details.append(flowTree(child, key));
  return details;
}

// -- one call's timeline ------------------------------------------------------------------------

function eventItem(event) {
  const kind = event.event_type;
  const item = el("li", { class: kind === "result" ? `result-${event.outcome}` : kind });
  const title = el("div", {}, el("span", { class: "kind", text: kind }), ` iteration ${event.iteration}`);
  if (event.attempt) title.append(`, attempt ${event.attempt}`);
  item.append(title);
  if (kind === "request") {
    item.append(fields([["method", (event.method || "").toUpperCase()], ["url", event.uri]]));
    add(item, params(event.uri, event.req_body), headerList(event.req_headers), body(event.req_body, event.req_headers));
  } else if (kind === "response") {
    const t = event.timings || {};
    item.append(fields([["status", event.resp_status_code], ["total ms", t.total_ms], ["first byte ms", t.ttfb_ms]]));
    add(item, headerList(event.resp_headers), body(event.resp_body, event.resp_headers));
  } else if (kind === "error") {
    item.append(fields([["reason", event.reason], ["message", event.message]]));
  } else if (kind === "result") {
    item.append(fields([["outcome", event.outcome], ["reason", event.reason], ["message", event.message], ["format", event.response_format], ["total ms", (event.timings || {}).total_ms]]));
    for (const list of ["schema_errors", "json_errors", "warnings"]) {
      if (event[list] && event[list].length) item.append(el("details", { open: "" }, el("summary", { text: list }), highlightJson(JSON.stringify(event[list]))));
    }
    if (event.callflow) item.append(el("div", { class: "flow" }, el("div", { text: "callflow" }), flowTree(event.callflow)));
  }
  return item;
}

async function showCall(callId, row) {
  say(`loading ${callId} ...`);
  for (const selected of document.querySelectorAll("#calls tr.selected")) selected.classList.remove("selected");
  row.classList.add("selected");
  const events = await api(`/${encodeURIComponent(callId)}`);
  document.getElementById("call-title").textContent = `Call ${callId}`;
  const timeline = document.getElementById("timeline");
  timeline.replaceChildren(...events.map(eventItem));
  document.getElementById("call-panel").hidden = false;
  say(`${events.length} events`);
}

document.getElementById("auth").addEventListener("submit", (event) => {
  event.preventDefault();
  state.token = document.getElementById("token").value.trim();
  state.account = document.getElementById("account").value.trim();
  sessionStorage.setItem("pivot-inspector", JSON.stringify(state));
  loadCalls().catch((e) => say(e.message));
});

const saved = JSON.parse(sessionStorage.getItem("pivot-inspector") || "null");
if (saved) {
  document.getElementById("token").value = saved.token;
  document.getElementById("account").value = saved.account;
}
