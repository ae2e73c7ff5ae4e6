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

let recsTicket = 0;  // the latest recommendations request: an older answer arriving later is dropped

async function loadRecommendations(user) {
  const ticket = ++recsTicket;
  const k = Math.max(1, Math.min(100, Number($("k").value) || 10));
  // Until the box is touched, the run decides (already-seen items left out unless people come back).
  const seen = $("exclude-seen");
  const policy = $("policy").value;
  const explore = policy ? Number($("explore").value) : 0;
  const query =
    `k=${k}` + (seen.dataset.touched ? `&exclude_seen=${seen.checked}` : "") +
    (policy ? `&policy=${policy}&explore=${explore}` : "");
  const recs = await api(`/users/${encodeURIComponent(user)}/recommendations?${query}`);
  if (ticket !== recsTicket) return;  // the controls changed while this one was on its way
  seen.checked = recs.exclude_seen;
  const explored = recs.items.filter((item) => item.role === "explore").length;
  $("recs-note").textContent =
    `${recs.model} model, ${recs.retrieval} retrieval, from ${recs.history_length} stored events` +
    (recs.history_length ? "" : " (a new user: the most popular items)") +
    (recs.policy ? `; ${recs.policy} at explore ${recs.explore.toFixed(1)}: ${explored} to explore` : "");
  const list = $("recs");
  list.replaceChildren();
  for (const item of recs.items) {
    const li = document.createElement("li");
    li.dataset.itemId = item.item_id;
    if (item.role) li.dataset.role = item.role;
    li.classList.toggle("explore", item.role === "explore");
    const line = document.createElement("div");
    line.className = "rec-line";
    const title = document.createElement("span");
    title.className = "title";
    title.textContent = item.title || item.item_id;
    if (item.role) {
      const badge = document.createElement("span");
      badge.className = `badge ${item.role}`;
      badge.textContent = item.interest ? `${item.role} · ${item.interest}` : item.role;
      title.append(" ", badge);
    }
    const meta = document.createElement("span");
    meta.className = "score";
    meta.textContent = `${item.item_id} · ${item.score.toFixed(2)}`;
    const why = document.createElement("button");
    why.className = "small why";
    why.type = "button";
    why.textContent = "why?";
    why.title = "which past items and interests drove this recommendation";
    why.addEventListener("click", () => toggleExplanation(user, item, li));
    const viewed = document.createElement("button");
    viewed.className = "small record";
    viewed.type = "button";
    viewed.textContent = "record a view";
    viewed.title = "store a view event for this user and item now";
    viewed.addEventListener("click", () => recordView(user, item, recs.request_id));
    const buttons = document.createElement("span");
    buttons.className = "buttons";
    buttons.append(why, viewed);
    line.append(title, meta, buttons);
    li.append(line);
    list.append(li);
  }
}

async function toggleExplanation(user, item, li) {
  const open = li.querySelector(".explanation");
  if (open) {
    open.remove();
    return;
  }
  const box = document.createElement("div");
  box.className = "explanation";
  box.textContent = "Working out why…";
  li.append(box);
  try {
    const path = `/users/${encodeURIComponent(user)}/recommendations/${encodeURIComponent(item.item_id)}/explanation?top=3`;
    const why = await api(path);
    box.replaceChildren();
    const head = document.createElement("p");
    head.className = "muted";
    head.textContent = `Rank ${why.rank}; weights are how much the score drops without each past event (of ${why.n_history}).`;
    const past = document.createElement("ul");
    for (const c of why.items) {
      const entry = document.createElement("li");
      const weight = document.createElement("span");
      weight.className = c.weight >= 0 ? "weight up" : "weight down";
      weight.textContent = (c.weight >= 0 ? "+" : "") + c.weight.toFixed(2);
      entry.append(weight, ` ${c.title || c.item_id}`);
      if (c.interests.length) {
        const tags = document.createElement("span");
        tags.className = "muted";
        tags.textContent = ` (${c.interests.join(", ")})`;
        entry.append(tags);
      }
      past.append(entry);
    }
    const interests = document.createElement("p");
    interests.className = "interests";
    interests.textContent = "Interests: " +
      (why.interests.slice(0, 3).map((w) => `${w.interest} ${w.weight >= 0 ? "+" : ""}${w.weight.toFixed(2)}`).join(", ") || "none");
    box.append(head, past, interests);
  } catch (error) {
    box.textContent = `No explanation: ${error.message}`;
    box.classList.add("error");
  }
}

const SVG = "http://www.w3.org/2000/svg";

function svg(name, attributes, text) {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

// Two bars per interest (long term over short term), on one scale, with emerging/fading marked.
function profileChart(profile) {
  const long = new Map(profile.long_term.map((w) => [w.interest, w.weight]));
  const short = new Map(profile.short_term.map((w) => [w.interest, w.weight]));
  const emerging = new Set(profile.emerging.map((s) => s.interest));
  const fading = new Set(profile.fading.map((s) => s.interest));
  const names = [...new Set([...long.keys(), ...short.keys()])];
  const top = Math.max(...long.values(), ...short.values(), 0.01);
  const label = 150, bars = 420, row = 34, width = label + bars + 150;
  const chart = svg("svg", { viewBox: `0 0 ${width} ${names.length * row + 4}`, role: "img", class: "chart" });
  chart.append(svg("title", {}, `Interests of user ${profile.user_id}: long and short term shares`));
  names.forEach((name, n) => {
    const y = n * row + 4;
    const group = svg("g", { class: "interest", "data-interest": name });
    group.append(svg("text", { x: label - 8, y: y + 17, "text-anchor": "end", class: "name" }, name));
    for (const [kind, share, dy] of [["long", long.get(name) || 0, 2], ["short", short.get(name) || 0, 15]]) {
      const w = Math.max(1, (share / top) * bars);
      const bar = svg("rect", { x: label, y: y + dy, width: w, height: 11, rx: 2, class: `bar ${kind}` });
      bar.append(svg("title", {}, `${name}, ${kind} term: ${(share * 100).toFixed(1)}%`));
      group.append(bar, svg("text", { x: label + w + 5, y: y + dy + 10, class: "value" }, `${(share * 100).toFixed(0)}%`));
    }
    const shift = emerging.has(name) ? "emerging" : fading.has(name) ? "fading" : "";
    if (shift) {
      group.classList.add(shift);
      group.append(svg("text", { x: label + bars + 50, y: y + 17, class: `shift ${shift}` }, shift === "emerging" ? "▲ emerging" : "▼ fading"));
    }
    chart.append(group);
  });
  return chart;
}

async function loadProfile(user) {
  const chart = $("profile-chart");
  try {
    const profile = await api(`/users/${encodeURIComponent(user)}/profile`);
    chart.replaceChildren(profile.long_term.length ? profileChart(profile) : "");
    $("profile-window").textContent = profile.short_term_window;
    $("profile-summary").textContent = profile.summary;
    $("profile-summary").classList.remove("error");
  } catch (error) {
    chart.replaceChildren();  // no interests is a state of the user or the run, not a page error
    $("profile-summary").textContent = `No interest profile: ${error.message}`;
  }
  $("profile").hidden = false;
}

async function recordView(user, item, requestId) {
  try {
    // Naming the list that showed the item makes the view that list's reward (its click-through).
    const stored = await api("/events", {
      method: "POST",
      body: JSON.stringify({
        user_id: user, item_id: item.item_id, timestamp: Date.now() / 1000, event_type: "view", request_id: requestId,
      }),
    });
    await showUser(user);
    setStatus(
      `Recorded a view of “${item.title || item.item_id}”; the recommendations above already include it` +
      (stored.rewarded ? " and the click-through below counts it." : ".")
    );
  } catch (error) {
    setStatus(`Could not record the view: ${error.message}`, true);
  }
}

// Click-through per time bucket, one line per role (explore, exploit, no policy), all policies together.
function feedbackChart(body) {
  const roles = ["explore", "exploit", "model"];
  const series = new Map(roles.map((role) => [role, new Map()]));
  for (const r of body.timeline) {
    const points = series.get(r.role || "model");
    const [shown, rewarded] = points.get(r.start) || [0, 0];
    points.set(r.start, [shown + r.shown, rewarded + r.rewarded]);
  }
  const starts = body.timeline.map((r) => r.start);
  const first = Math.min(...starts), last = Math.max(...starts) + body.bucket_seconds;
  const ctrs = body.timeline.map((r) => r.ctr || 0);
  const top = Math.max(0.05, ...ctrs) * 1.1;
  const left = 46, right = 12, height = 180, width = 720, plot = width - left - right;
  const x = (t) => left + ((t + body.bucket_seconds / 2 - first) / (last - first)) * plot;
  const y = (ctr) => 8 + (1 - ctr / top) * (height - 30);
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", class: "chart" });
  chart.append(svg("title", {}, "Click-through of recommended items over time, explore vs exploit"));
  chart.append(svg("line", { x1: left, x2: width - right, y1: y(0), y2: y(0), class: "axis" }));
  for (const tick of [0, top / 2, top]) {
    chart.append(svg("text", { x: left - 6, y: y(tick) + 4, "text-anchor": "end", class: "tick" }, `${(tick * 100).toFixed(0)}%`));
  }
  for (const t of [first, last]) {
    const label = new Date(t * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    chart.append(svg("text", { x: t === first ? left : width - right, y: height - 4, "text-anchor": t === first ? "start" : "end", class: "tick" }, label));
  }
  for (const [role, points] of series) {
    const sorted = [...points.entries()].sort((a, b) => a[0] - b[0]);
    if (!sorted.length) continue;
    const xy = sorted.map(([t, [shown, rewarded]]) => [x(t), y(rewarded / shown), shown, rewarded, t]);
    chart.append(svg("polyline", { points: xy.map(([px, py]) => `${px},${py}`).join(" "), class: `line ${role}` }));
    for (const [px, py, shown, rewarded, t] of xy) {
      const dot = svg("circle", { cx: px, cy: py, r: 4, class: `dot ${role}`, "data-role": role });
      dot.append(svg("title", {}, `${role}, from ${new Date(t * 1000).toLocaleString()}: ${rewarded} of ${shown} clicked`));
      chart.append(dot);
    }
  }
  return chart;
}

async function loadFeedback() {
  try {
    const body = await api("/feedback?hours=24&bucket=900");
    $("feedback-window").textContent = `${Math.round(body.reward_window_seconds / 60)} minutes`;
    const byRole = new Map();
    for (const r of body.totals) {
      const [shown, rewarded] = byRole.get(r.role || "model") || [0, 0];
      byRole.set(r.role || "model", [shown + r.shown, rewarded + r.rewarded]);
    }
    $("feedback-chart").replaceChildren(body.timeline.length ? feedbackChart(body) : "");
    $("feedback-summary").textContent = byRole.size
      ? [...byRole.entries()].map(([role, [shown, rewarded]]) =>
          `${role === "model" ? "no policy" : role}: ${rewarded} of ${shown} clicked (${((rewarded / shown) * 100).toFixed(1)}%)`).join(" · ")
      : "No recommendations shown in the last 24 hours.";
    $("feedback").hidden = false;
  } catch (error) {
    /* click-through is a report beside the user view; the user view reports real errors */
  }
}

async function showUser(user) {
  state.user = user;
  location.hash = `user=${encodeURIComponent(user)}`;
  setStatus(`Loading user ${user}…`);
  try {
    await Promise.all([loadActivity(user), loadRecommendations(user), loadProfile(user)]);
    await loadFeedback();
    $("user-view").hidden = false;
    setStatus(`User ${user}`);
  } catch (error) {
    setStatus(error.message, true);
  }
}

async function refreshRecommendations() {
  if (!state.user) return;
  const user = state.user;
  setStatus(`Loading recommendations for ${user}…`);
  try {
    await loadRecommendations(user);
    await loadFeedback();
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

async function showModel() {
  // Without a valid key /health says only whether keys are needed; with one, what is served.
  const health = await api("/health");
  state.auth = health.auth;
  $("model").textContent = health.model
    ? `${health.model} model · ${health.items} items · ${health.retrieval} retrieval`
    : "";
}

async function start() {
  try {
    await showModel();
    if (state.auth === "keys" && apiKey()) await showModel();
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
    showModel().catch(() => {});
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
  $("explore-form").addEventListener("submit", (event) => event.preventDefault());
  $("policy").addEventListener("change", () => {
    $("explore").disabled = !$("policy").value;
    refreshRecommendations();
  });
  $("explore").addEventListener("input", () => {
    $("explore-value").textContent = Number($("explore").value).toFixed(1);
  });
  $("explore").addEventListener("change", refreshRecommendations);
  $("exclude-seen").addEventListener("change", () => {
    $("exclude-seen").dataset.touched = "1";
    refreshRecommendations();
  });
  suggestUsers();
  const match = location.hash.match(/^#user=(.+)$/);
  if (match) {
    $("user-id").value = decodeURIComponent(match[1]);
    showUser($("user-id").value);
  }
}

start();
