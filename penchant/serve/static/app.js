// The penchant dashboard: plain JavaScript over the service's own API; no build step, no CDN.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { user: null, auth: "open" };

function apiKey() {
  return sessionStorage.getItem("penchant-api-key") || "";
}

async function api(path, options = {}) {
  const headers = { Accept: "application/json", ...(options.headers || {}) };
  if (state.auth === "keys" && apiKey()) headers["X-API-Key"] = apiKey();
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, { ...options, headers });
  const body = response.headers.get("content-type")?.includes("json") ? await response.json() : null;
  if (!response.ok) throw new Error((body && body.detail) || `${response.status} ${response.statusText}`);
  return body;
}

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

function cell(row, text, className) {
  const td = row.insertCell();
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function when(seconds) {
  return new Date(seconds * 1000).toISOString().replace("T", " ").slice(0, 16);
}

async function loadActivity(user) {
  const page = await api(`/users/${encodeURIComponent(user)}/events?latest=true&limit=20`);
  const body = $("activity-rows");
  body.replaceChildren();
  for (const event of [...page.events].reverse()) {  // newest at the top
    const row = body.insertRow();
    cell(row, when(event.timestamp), "muted");
    const item = cell(row, event.title || event.item_id, "title");
    item.dataset.itemId = event.item_id;
    cell(row, [event.event_type, event.value].filter((v) => v !== null && v !== undefined).join(" "), "muted");
  }
  $("activity-note").textContent = page.events.length ? "" : "No events stored for this user yet.";
}

async function loadRecommendations(user) {
  const k = Math.max(1, Math.min(100, Number($("k").value) || 10));
  const exclude = $("exclude-seen").checked;
  const recs = await api(`/users/${encodeURIComponent(user)}/recommendations?k=${k}&exclude_seen=${exclude}`);
  $("recs-note").textContent =
    `${recs.model} model, ${recs.retrieval} retrieval, from ${recs.history_length} stored events` +
    (recs.history_length ? "" : " (a new user: the most popular items)");
  const list = $("recs");
  list.replaceChildren();
  for (const item of recs.items) {
    const li = document.createElement("li");
    li.dataset.itemId = item.item_id;
    const line = document.createElement("div");
    line.className = "rec-line";
    const title = document.createElement("span");
    title.className = "title";
    title.textContent = item.title || item.item_id;
    const meta = document.createElement("span");
    meta.className = "score";
    meta.textContent = `${item.item_id} · ${item.score.toFixed(2)}`;
    const viewed = document.createElement("button");
    viewed.className = "small record";
    viewed.type = "button";
    viewed.textContent = "record a view";
    viewed.title = "store a view event for this user and item now";
    viewed.addEventListener("click", () => recordView(user, item));
    line.append(title, meta, viewed);
    li.append(line);
    list.append(li);
  }
}

async function recordView(user, item) {
  try {
    await api("/events", {
      method: "POST",
      body: JSON.stringify({ user_id: user, item_id: item.item_id, timestamp: Date.now() / 1000, event_type: "view" }),
    });
    await showUser(user);
    setStatus(`Recorded a view of “${item.title || item.item_id}”; the recommendations above already include it.`);
  } catch (error) {
    setStatus(`Could not record the view: ${error.message}`, true);
  }
}

async function showUser(user) {
  state.user = user;
  location.hash = `user=${encodeURIComponent(user)}`;
  setStatus(`Loading user ${user}…`);
  try {
    await Promise.all([loadActivity(user), loadRecommendations(user)]);
    $("user-view").hidden = false;
    setStatus(`User ${user}`);
  } catch (error) {
    setStatus(error.message, true);
  }
}

let suggestTimer = null;
function suggestUsers() {
  clearTimeout(suggestTimer);
  suggestTimer = setTimeout(async () => {
    try {
      const found = await api(`/users?prefix=${encodeURIComponent($("user-id").value.trim())}&limit=20`);
      const list = $("user-list");
      list.replaceChildren();
      for (const u of found.users) {
        const option = document.createElement("option");
        option.value = u.user_id;
        option.label = `${u.events} events`;
        list.append(option);
      }
    } catch (error) {
      /* suggestions are a convenience; the Show button reports real errors */
    }
  }, 150);
}

async function start() {
  try {
    const health = await api("/health");
    state.auth = health.auth;
    $("model").textContent = `${health.model} model · ${health.items} items · ${health.retrieval} retrieval`;
  } catch (error) {
    setStatus(`The service does not answer: ${error.message}`, true);
    return;
  }
  if (state.auth === "keys") {
    $("key-form").hidden = false;
    $("api-key").value = apiKey();
    if (!apiKey()) setStatus("This service needs an API key: paste one above (penchant keys create prints one).");
  }
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem("penchant-api-key", $("api-key").value.trim());
    if (state.user) showUser(state.user);
    else setStatus("Key saved for this tab.");
  });
  $("user-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const user = $("user-id").value.trim();
    if (user) showUser(user);
    else setStatus("Type a user ID first.", true);
  });
  $("user-id").addEventListener("input", suggestUsers);
  suggestUsers();
  const match = location.hash.match(/^#user=(.+)$/);
  if (match) {
    $("user-id").value = decodeURIComponent(match[1]);
    showUser($("user-id").value);
  }
}

start();
