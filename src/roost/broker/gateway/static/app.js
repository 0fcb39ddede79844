// The roost dashboard: one websocket to /ws speaking the JSON forms, plus /api/stats.
// Plain JavaScript, no build step, nothing fetched from elsewhere.
"use strict";

const MAX_LOG = 100;
const live = {
  ws: null,
  next: 1,
  waiting: new Map(),      // request id -> resolve
  nodes: new Map(),        // path -> {kind, row}
  holders: new Map(),      // resource -> holder state value
  listened: new Set(),     // event paths the user picked
  patterns: new Map(),     // subtree subscription number -> event pattern the user picked
  nextSub: 0,
  credentials: null,       // {user, password} from the login form
  relogin: false,          // the page closed its websocket to log in on a new one
  awaitLogin: false,       // a login failed: no reconnect until the form is sent again
  user: null,              // the user the broker logged the page in as
  walkTimer: null,
  statsTimer: null,
  lastStats: null,
};

// Logins: the user and password typed in the login form (kept in this page only, never
// stored) go to the broker before the hello, so the page sees what that user may see.
// Without them the page is anonymous, where the broker allows it.
// Returns false when the login failed: the page then closes and waits for the form.
async function login(ws) {
  const credentials = live.credentials;
  live.user = null;
  if (!credentials) return true;
  const r = await request("auth_login", credentials);
  if (r.ok) {
    live.user = r.value.user;
    return true;
  }
  live.credentials = null;
  showLogin((r.value && r.value.reason) || text(r.value));
  return false;
}

function showLogin(why) {
  $("#login-form").hidden = false;
  $("#login-error").textContent = why || "";
  $("#login-user").focus();
}

const $ = (sel) => document.querySelector(sel);
const text = (v) => (v === undefined ? "" : JSON.stringify(v));

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "onclick") node.onclick = v; else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

function send(form) {
  if (live.ws && live.ws.readyState === WebSocket.OPEN) live.ws.send(JSON.stringify(form));
}

// Send [verb, id, ...fields] and resolve with {ok, value, time} when its reply comes.
function request(verb, ...fields) {
  const id = live.next;
  live.next = (live.next + 1) % 65536;
  return new Promise((resolve) => {
    live.waiting.set(id, resolve);
    send([verb, id, ...fields]);
  });
}

const call = (path, args) => request("action_call", path, args);

function setStatus(word, cls) {
  const s = $("#status");
  s.textContent = word;
  s.className = "status " + cls;
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  const ws = new WebSocket(scheme + location.host + "/ws");
  live.ws = ws;
  ws.onopen = async () => {
    if (await login(ws)) {
      send(["hello", 1, 30]);
    } else {
      live.awaitLogin = true;
      ws.close();
    }
  };
  ws.onmessage = (e) => receive(JSON.parse(e.data));
  ws.onclose = (e) => {
    for (const resolve of live.waiting.values()) resolve({ok: false, value: "disconnected"});
    live.waiting.clear();
    if (live.awaitLogin) {
      setStatus("log in", "down");
      return;
    }
    if (e.code === 4000 && e.reason.startsWith("login")) {
      // The broker wants a login here (or refused too many): ask, and connect once given.
      setStatus("log in", "down");
      showLogin(e.reason === "login_failed" ? "too many failed logins" : "this broker needs a login");
      return;
    }
    // 1013: the broker has max_connections open; the page tries again like after any close.
    setStatus(e.code === 1013 ? "broker full" : "disconnected", "down");
    if (live.relogin) { live.relogin = false; connect(); } else setTimeout(connect, 2000);
  };
}

function receive(form) {
  const verb = form[0];
  if (verb === "hello_id" || verb === "hello") {
    setStatus(live.user ? "live as " + live.user : "live", "up");
    started();
  } else if (verb === "reply" || verb === "reply_state") {
    const resolve = live.waiting.get(form[1]);
    live.waiting.delete(form[1]);
    if (!resolve) return;
    const [result, value, time] = form[2];
    if (verb === "reply_state" && result === "ok") {
      resolve({ok: true, known: value !== "unknown", value: value === "unknown" ? undefined : value[1], time});
    } else {
      resolve({ok: result === "ok", value});
    }
  } else if (verb === "state_changed") {
    const [, path, change] = form;
    stateValue(path, change === "unknown" ? undefined : change[1], change !== "unknown");
  } else if (verb === "event_notify") {
    eventSeen(form[1], form[2]);
  } else if (verb === "subtree_event") {
    // A path also listened to exactly is logged once, from its event_notify.
    if (!live.listened.has(form[1])) logEvent(form[1], form[2]);
  }
}

function started() {
  for (const row of document.querySelectorAll("#tree tbody tr")) row.remove();
  live.nodes.clear();
  live.holders.clear();
  request("state_observe", "/meta/clients").then((r) => r.ok && clientsValue(r.value));
  request("event_listen", "/meta/lease_events");
  for (const path of live.listened) request("event_listen", path);
  for (const [sub, pattern] of live.patterns) request("subtree_listen", {sub, pattern});
  walk();
}

// -- the tree -------------------------------------------------------------------------------

function scheduleWalk() {
  if (live.walkTimer) return;
  live.walkTimer = setTimeout(() => { live.walkTimer = null; walk(); }, 150);
}

async function walk() {
  const seen = new Set();
  async function ls(dir) {
    const r = await call("/meta/ls", [dir]);
    if (!r.ok || !Array.isArray(r.value) || r.value[0] !== "dir") return;
    const subdirs = [];
    for (const [name, kind] of r.value[1]) {
      const path = (dir === "/" ? "" : dir) + "/" + name;
      if (kind === "dir") subdirs.push(ls(path));
      else { seen.add(path); addNode(path, kind); }
    }
    await Promise.all(subdirs);
  }
  await ls("/");
  for (const path of [...live.nodes.keys()]) if (!seen.has(path)) removeNode(path);
}

const hidden = (path) => path.startsWith("/meta/leases/") || path === "/meta/clients" || path === "/meta/lease_events";

function addNode(path, kind) {
  if (live.nodes.has(path)) return;
  if (path.startsWith("/meta/leases/") && path.endsWith("/holder")) {
    live.nodes.set(path, {kind, row: null});
    request("state_observe", path).then((r) => r.ok && holderValue(r.value));
    return;
  }
  if (hidden(path)) return;
  const value = el("td", {class: "value"});
  const buttons = el("td");
  const row = el("tr", {"data-path": path, "data-kind": kind}, el("td", {}, path), el("td", {class: "kind"}, kind), value, buttons);
  live.nodes.set(path, {kind, row});
  if (kind === "state") {
    request("state_observe", path).then((r) => r.ok && showValue(row, r.value, r.known));
    buttons.append(el("button", {onclick: () => setValue(path, row)}, "set"));
  } else if (kind === "prop") {
    const get = () => request("get", path).then((r) => showValue(row, r.value, r.ok));
    get();
    buttons.append(el("button", {onclick: get}, "get"), " ", el("button", {onclick: () => setValue(path, row)}, "set"));
  } else if (kind === "action") {
    buttons.append(el("button", {onclick: () => callAction(path, row)}, "call"));
  } else if (kind === "event") {
    buttons.append(el("button", {onclick: () => listen(path)}, "listen"));
  }
  const body = $("#tree tbody");
  const after = [...body.children].find((r) => r.dataset.path > path);
  body.insertBefore(row, after || null);
}

function removeNode(path) {
  const node = live.nodes.get(path);
  live.nodes.delete(path);
  if (node && node.row) node.row.remove();
}

function showValue(row, value, known) {
  const cell = row.querySelector("td.value");
  cell.textContent = known ? text(value) : "unknown";
  cell.classList.toggle("muted", !known);
  row.classList.add("changed");
  setTimeout(() => row.classList.remove("changed"), 400);
}

function stateValue(path, value, known) {
  if (path === "/meta/clients") return clientsValue(value);
  if (path.startsWith("/meta/leases/")) return holderValue(value);
  const node = live.nodes.get(path);
  if (node && node.row) showValue(node.row, value, known);
}

function askJson(question, fallback) {
  const answer = window.prompt(question, fallback);
  if (answer === null) return undefined;
  try { return JSON.parse(answer); } catch (e) { window.alert("not JSON: " + e.message); return undefined; }
}

async function callAction(path, row) {
  const args = askJson("arguments (a JSON array) for " + path, "[]");
  if (args === undefined) return;
  const r = await call(path, args);
  showValue(row, r.ok ? r.value : {error: r.value}, true);
}

async function setValue(path, row) {
  const value = askJson("new value (JSON) for " + path, "");
  if (value === undefined) return;
  const r = await request("set", path, value);
  if (!r.ok) window.alert(path + ": " + text(r.value));
}

// -- events ---------------------------------------------------------------------------------

function log(list, html) {
  const item = el("li", {}, el("time", {}, new Date().toLocaleTimeString()), ...html);
  list.prepend(item);
  while (list.children.length > MAX_LOG) list.lastChild.remove();
}

// A pattern (a + segment, or ** last: /lab/**) is a subtree subscription; a path a listen.
const isPattern = (path) => path.split("/").some((s) => s === "+" || s === "**" || s.includes("#"));

function listenPattern(pattern) {
  if ([...live.patterns.values()].includes(pattern)) return;
  const sub = live.nextSub;
  live.nextSub = (live.nextSub + 1) % 65536;
  live.patterns.set(sub, pattern);
  request("subtree_listen", {sub, pattern}).then((r) => {
    if (!r.ok) {
      live.patterns.delete(sub);
      window.alert(pattern + ": " + (r.value && r.value.reason ? r.value.reason : text(r.value)));
    }
  });
}

function listen(path) {
  if (isPattern(path)) return listenPattern(path);
  if (live.listened.has(path)) return;
  live.listened.add(path);
  request("event_listen", path).then((r) => {
    if (!r.ok) { live.listened.delete(path); window.alert(path + ": " + text(r.value)); }
  });
}

function eventSeen(path, value) {
  if (path === "/meta/lease_events") {
    const who = value.holder ? (value.holder.name || text(value.holder.client)) : "";
    log($("#lease-events"), [`${value.event} ${value.resource} ${who} ${value.reason || value.status || ""}`]);
    scheduleWalk();
    scheduleStats();
    return;
  }
  logEvent(path, value);
}

function logEvent(path, value) {
  log($("#events"), [path + " ", el("code", {}, text(value))]);
}

// -- leases and clients ---------------------------------------------------------------------

function holderValue(value) {
  if (!value || typeof value.resource !== "string") return;
  live.holders.set(value.resource, value);
  const body = $("#leases tbody");
  body.replaceChildren();
  for (const [resource, v] of [...live.holders.entries()].sort()) {
    const holders = v.holders || [];
    if (!holders.length && !v.waiters) continue;
    const names = holders.map((h) => (h.name || text(h.client)) + (h.resource !== resource ? " (on " + h.resource + ")" : "")).join(", ");
    body.append(el("tr", {"data-resource": resource}, el("td", {}, resource), el("td", {}, v.mode || "-"),
      el("td", {class: "holders"}, names || "-"), el("td", {}, String(v.waiters_total ?? v.waiters ?? 0))));
  }
}

function clientsValue(value) {
  if (!value || !Array.isArray(value.clients)) return;
  const body = $("#clients tbody");
  body.replaceChildren();
  for (const c of value.clients) {
    const since = new Date(c.since * 1000).toLocaleTimeString();
    body.append(el("tr", {}, el("td", {}, text(c.client)), el("td", {}, c.peer), el("td", {}, since),
      el("td", {}, String(c.registrations)), el("td", {}, String(c.leases))));
  }
  scheduleWalk();
  scheduleStats();
}

// -- broker figures -------------------------------------------------------------------------

function duration(s) {
  const d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24, m = Math.floor(s / 60) % 60;
  return (d ? d + "d " : "") + (d || h ? h + "h " : "") + m + "m " + Math.floor(s % 60) + "s";
}

// Figures refresh every 2 s, and soon after anything the page hears of changes them.
function scheduleStats() {
  if (live.statsTimer) return;
  live.statsTimer = setTimeout(() => { live.statsTimer = null; stats(); }, 300);
}

async function stats() {
  try {
    const r = await fetch("/api/stats");
    const s = await r.json();
    const prev = live.lastStats;
    if (prev) {
      const dt = Math.max(0.001, s.time - prev.time);
      $("#fig-rate").textContent = Math.round((s.messages_in - prev.messages_in) / dt);
      $("#fig-deliveries").textContent = Math.round((s.deliveries - prev.deliveries) / dt);
    }
    live.lastStats = s;
    $("#fig-connections").textContent = s.connections;
    $("#fig-leases").textContent = s.leases.held + " held, " + s.leases.waiting + " waiting";
    $("#fig-uptime").textContent = duration(s.uptime);
  } catch (e) { /* the next round tries again */ }
}

$("#login-open").onclick = () => showLogin("");
$("#login-form").onsubmit = (e) => {
  e.preventDefault();
  live.credentials = {user: $("#login-user").value, password: $("#login-password").value};
  $("#login-password").value = "";
  $("#login-form").hidden = true;
  live.awaitLogin = false;
  // A new connection: the login must come before its hello.
  if (live.ws && live.ws.readyState === WebSocket.OPEN) { live.relogin = true; live.ws.close(); } else connect();
};

$("#listen-form").onsubmit = (e) => {
  e.preventDefault();
  const path = $("#listen-path").value.trim();
  if (path) listen(path);
};

connect();
stats();
setInterval(stats, 2000);
setInterval(() => request("ping"), 10000);
setInterval(scheduleWalk, 5000);
