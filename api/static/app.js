// SmartPark dashboard: one page, hash-routed views, live parts fed by the /api/v1/live WebSocket.
"use strict";

const WINDOW_MS = 10 * 60 * 1000; // overview chart history kept per park
const STALE_MS = 15 * 1000; // a card whose last frame is older is dimmed
const API = "/api/v1";
const state = {
  lang: localStorage.getItem("sp-lang") || (new URLSearchParams(location.search).get("lang") === "en" ? "en" : "zh"),
  session: JSON.parse(sessionStorage.getItem("sp-session") || "null"), // {token, username, role, enterprise}
  parks: [], // parks the caller sees, in order
  kpi: {}, // park id -> {ts, kpi, enterprises, seen}
  series: {}, // park id -> [[ts, load, generation], ...]
  selected: null,
  view: null, // {name, id}
  conn: "connecting",
  retryAt: 0,
  charts: {},
  ent: null, // the enterprise shown: {info, devices, latest: {id: LatestPublic}, alerts: []}
  safety: [], // safety events shown
  rankBy: "consumed",
  parkEval: null, // the park view's per-mu evaluation
  entEval: null, // the enterprise view's evaluation
  targets: null, // {assessment, parks: {id: targets}}
  open: { alerts: {}, safety: {} }, // open (raised or acknowledged) energy alerts and safety events by id
  openPending: null, // frames received while the open lists load
  ws: null,
};

function t(key, vars) {
  const table = window.I18N[state.lang] || window.I18N.zh;
  let text = table[key] ?? window.I18N.zh[key] ?? key;
  for (const [k, v] of Object.entries(vars || {})) text = text.replace(`{${k}}`, v);
  return text;
}
const $ = (id) => document.getElementById(id);
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(node.dataset, v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(c ?? ""));
  return node;
}

// ---- formatting ----------------------------------------------------------------------------------------
function fmtNumber(value, digits) {
  return value.toLocaleString(state.lang === "zh" ? "zh-CN" : "en-US",
    { minimumFractionDigits: digits, maximumFractionDigits: digits });
}
const missing = (v) => v === null || v === undefined || Number.isNaN(v);
function fmtPower(kw) {
  if (missing(kw)) return "—";
  return Math.abs(kw) >= 1000 ? `${fmtNumber(kw / 1000, 2)} MW` : `${fmtNumber(kw, 1)} kW`;
}
function fmtEnergy(kwh) {
  if (missing(kwh)) return "—";
  return Math.abs(kwh) >= 1000 ? `${fmtNumber(kwh / 1000, 2)} MWh` : `${fmtNumber(kwh, 1)} kWh`;
}
function fmtRatio(r) { return missing(r) ? "—" : `${fmtNumber(r * 100, 1)}%`; }
function fmtKpi(key, v) {
  if (key.endsWith("_kwh")) return fmtEnergy(v);
  if (key.startsWith("new_energy_ratio")) return fmtRatio(v);
  if (key === "tce_today") return missing(v) ? "—" : `${fmtNumber(v, 3)} tce`;
  if (key.endsWith("_kg")) return missing(v) ? "—" : (Math.abs(v) >= 1000 ? `${fmtNumber(v / 1000, 2)} t` : `${fmtNumber(v, 1)} kg`);
  return fmtPower(v);
}
function fmtTime(ms) { return new Date(ms).toLocaleTimeString(state.lang === "zh" ? "zh-CN" : "en-GB", { hour12: false }); }
function fmtDateTime(ms) { return new Date(ms).toLocaleString(state.lang === "zh" ? "zh-CN" : "en-GB", { hour12: false }); }
function fmtValue(name, v) {
  if (missing(v)) return "—";
  const unit = (name.match(/_(kw|kvar|kwh|v|a|hz|m3|t|pct|ppm|c|ugm3)$/) || [])[1];
  const units = { kw: "kW", kvar: "kvar", kwh: "kWh", v: "V", a: "A", hz: "Hz", m3: "m³", t: "t", pct: "%", ppm: "ppm", c: "°C", ugm3: "µg/m³" };
  return `${fmtNumber(v, Math.abs(v) >= 1000 ? 0 : 2)}${unit ? " " + units[unit] : ""}`;
}

// ---- API -------------------------------------------------------------------------------------------------
class HttpError extends Error { constructor(status, body) { super(`HTTP ${status}`); this.status = status; this.body = body; } }
async function api(path, options = {}) {
  const headers = { ...(options.headers || {}) };
  if (state.session) headers.Authorization = `Bearer ${state.session.token}`;
  if (options.body) headers["Content-Type"] = "application/json";
  const r = await fetch(API + path, { ...options, headers });
  const body = r.headers.get("content-type")?.includes("json") ? await r.json() : await r.text();
  if (r.status === 401 && state.session) { logout(); throw new HttpError(401, body); }
  if (!r.ok) throw new HttpError(r.status, body);
  return body;
}
// Alerts and safety events come from routes of their own; while they are missing the lists stay empty.
async function apiOrEmpty(path) {
  try { return await api(path); } catch (e) { if (e.status === 404 || e.status === 403) return { items: [], total: 0 }; throw e; }
}

// ---- session -----------------------------------------------------------------------------------------------
function home() {
  const s = state.session;
  if (!s) return "#/login";
  if (s.role === "enterprise") return `#/enterprise/${s.enterprise}`;
  if (s.role === "emergency") return "#/emergency";
  return "#/overview";
}
async function login(event) {
  event.preventDefault();
  $("login-error").textContent = "";
  const username = $("login-user").value.trim(), password = $("login-pass").value;
  try {
    const r = await fetch(`${API}/auth/login`, { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ username, password }) });
    const body = await r.json();
    if (!r.ok) {
      $("login-error").textContent = r.status === 429 ? t("login_locked") : t("login_failed");
      return;
    }
    state.session = { token: body.access_token, username: body.username, role: body.role, enterprise: body.enterprise,
      expires: Date.now() + body.expires_in * 1000 };
    sessionStorage.setItem("sp-session", JSON.stringify(state.session));
    $("login-pass").value = "";
    await start();
    location.hash = home();
  } catch (e) { $("login-error").textContent = t("login_failed"); }
}
function logout() {
  state.session = null;
  sessionStorage.removeItem("sp-session");
  if (state.ws) { state.ws.onclose = null; state.ws.close(); state.ws = null; }
  state.kpi = {}; state.series = {}; state.parks = []; state.open = { alerts: {}, safety: {} };
  location.hash = "#/login";
  route();
}

// ---- overview (every park) ---------------------------------------------------------------------------------
function currentTarget(park) {
  const targets = [...(park.new_energy_targets || [])].sort((a, b) => a.year - b.year);
  if (!targets.length) return null;
  const year = new Date().getFullYear();
  return targets.find((x) => x.year >= year) || targets[targets.length - 1];
}
function parkName(park) { return state.lang === "en" && park.name_en ? park.name_en : park.name; }
function entName(ent) { return state.lang === "en" && ent.name_en ? ent.name_en : ent.name; }

function buildCards() {
  const container = $("parks");
  const template = $("park-card");
  container.replaceChildren();
  for (const park of state.parks) {
    const card = template.content.firstElementChild.cloneNode(true);
    card.id = `park-${park.id}`;
    card.dataset.park = park.id;
    card.addEventListener("click", () => select(park.id));
    card.addEventListener("dblclick", () => { location.hash = `#/park/${park.id}`; });
    card.addEventListener("keydown", (e) => { if (e.key === "Enter") location.hash = `#/park/${park.id}`; });
    container.appendChild(card);
    renderCard(park);
  }
}

function renderCard(park) {
  const card = $(`park-${park.id}`);
  if (!card) return;
  const entry = state.kpi[park.id];
  const kpi = entry && entry.kpi ? entry.kpi : {};
  card.querySelector(".park-name").textContent = parkName(park);
  card.querySelector(".park-name").title = parkName(park);
  for (const node of card.querySelectorAll("[data-kpi]")) node.textContent = fmtKpi(node.dataset.kpi, kpi[node.dataset.kpi]);
  const updated = card.querySelector(".updated");
  updated.textContent = entry && entry.ts ? fmtTime(entry.ts) : t("no_data");
  updated.title = t("updated_at");
  card.classList.toggle("nodata", !entry);
  card.classList.toggle("selected", state.selected === park.id);
  const ratio = kpi.new_energy_ratio_today;
  const target = currentTarget(park);
  const fill = card.querySelector(".fill");
  fill.style.width = `${Math.max(0, Math.min(1, ratio || 0)) * 100}%`;
  fill.classList.toggle("met", target ? (ratio ?? 0) >= target.ratio : true);
  const mark = card.querySelector(".target-mark");
  const targetText = card.querySelector(".target");
  if (target) {
    mark.hidden = false;
    mark.style.left = `calc(${target.ratio * 100}% - 0.1rem)`;
    const label = t("target", { year: target.year, ratio: `≥ ${fmtNumber(target.ratio * 100, 0)}%` });
    targetText.textContent = target.area ? `${label} · ${target.area}` : label;
  } else {
    mark.hidden = true;
    targetText.textContent = "";
  }
  for (const node of card.querySelectorAll("[data-open]")) {
    const items = openOf(node.dataset.open, park.id);
    node.querySelector(".n").textContent = String(items.length);
    node.classList.toggle("some", items.length > 0);
    node.classList.toggle("unacked", items.some((a) => a.state === "raised"));
    node.classList.toggle("critical", items.some((a) => a.severity === "critical"));
  }
}

function renderSummary() {
  let load = 0, gen = 0, imp = 0, n = 0;
  for (const park of state.parks) {
    const entry = state.kpi[park.id];
    if (!entry || !entry.kpi) continue;
    n += 1;
    load += entry.kpi.load_kw || 0;
    gen += entry.kpi.generation_kw || 0;
    imp += entry.kpi.grid_import_kw || 0;
  }
  $("sum-load").textContent = n ? fmtPower(load) : "—";
  $("sum-gen").textContent = n ? fmtPower(gen) : "—";
  $("sum-import").textContent = n ? fmtPower(imp) : "—";
  $("sum-parks").textContent = `${n} / ${state.parks.length}`;
}

// ---- charts ----------------------------------------------------------------------------------------------------
function chart(id) {
  if (!window.echarts) return null;
  const node = $(id);
  if (!state.charts[id]) {
    state.charts[id] = echarts.init(node, null, { renderer: "canvas" });
    new ResizeObserver(() => state.charts[id].resize()).observe(node);
  }
  return state.charts[id];
}
function lineOptions(series, opts = {}) {
  const rootPx = parseFloat(getComputedStyle(document.documentElement).fontSize);
  const axis = { color: "#8aa0bd", fontSize: rootPx * 0.85 };
  return {
    backgroundColor: "transparent", animation: false, textStyle: { fontSize: rootPx * 0.9 },
    tooltip: { trigger: "axis", valueFormatter: opts.format || ((v) => fmtPower(v)) },
    legend: { data: series.map((s) => s.name), textStyle: { color: "#e3ecf7", fontSize: rootPx * 0.9 }, top: 0 },
    grid: { left: rootPx * 4.5, right: rootPx * 1.5, top: rootPx * 2.5, bottom: rootPx * 2 },
    xAxis: { type: "time", min: opts.min, max: opts.max, axisLabel: axis, axisLine: { lineStyle: { color: "#1d3352" } } },
    yAxis: { type: "value", name: opts.unit ?? "kW", nameTextStyle: axis, axisLabel: axis, splitLine: { lineStyle: { color: "#15263f" } } },
    series: series.map((s) => ({ type: "line", showSymbol: false, lineStyle: { width: 2 }, ...s })),
  };
}
function renderChart() {
  const park = state.parks.find((p) => p.id === state.selected);
  $("chart-park").textContent = park ? parkName(park) : "";
  const c = state.view?.name === "overview" ? chart("chart") : null;
  if (!c) return;
  const data = state.series[state.selected] || [];
  const now = Date.now();
  c.setOption(lineOptions([
    { name: t("series_load"), color: "#33c3ff", data: data.map((d) => [d[0], d[1]]) },
    { name: t("series_generation"), color: "#3ee08f", areaStyle: { opacity: 0.12 }, data: data.map((d) => [d[0], d[2]]) },
  ], { min: now - WINDOW_MS, max: now }), { replaceMerge: ["series"] });
}
function select(parkId) {
  state.selected = parkId;
  for (const park of state.parks) renderCard(park);
  renderChart();
}

// ---- park view ----------------------------------------------------------------------------------------------------
async function showPark(id) {
  const park = state.parks.find((p) => p.id === id);
  $("park-title").textContent = park ? parkName(park) : id;
  state.parkEnts = (await api(`/parks/${id}/enterprises/kpi`)).map((r) => ({ ...r }));
  renderPark();
  state.parkEval = null;
  renderParkEval();
  api(`/parks/${id}/evaluation`).then((body) => { if (state.view?.id === id) { state.parkEval = body; renderParkEval(); } })
    .catch((e) => { state.parkEval = { error: e }; renderParkEval(); });
  const end = Date.now();
  const hist = await api(`/parks/${id}/kpi/history?start=${end - 86400000}&end=${end}&every=15m&fields=load_kw,generation_kw,grid_import_kw,storage_kw`);
  const pick = (k) => hist.points.filter((p) => p[k] !== undefined).map((p) => [p.ts, p[k]]);
  const c = chart("park-chart");
  if (c) c.setOption(lineOptions([
    { name: t("series_load"), color: "#33c3ff", data: pick("load_kw") },
    { name: t("series_generation"), color: "#3ee08f", areaStyle: { opacity: 0.12 }, data: pick("generation_kw") },
    { name: t("grid_import"), color: "#ffb648", data: pick("grid_import_kw") },
    { name: t("flow_storage"), color: "#b48cff", data: pick("storage_kw") },
  ], { min: end - 86400000, max: end }), { replaceMerge: ["series"] });
}
function renderPark() {
  const id = state.view?.id;
  const entry = state.kpi[id];
  const kpi = (entry && entry.kpi) || {};
  const view = $("view-park");
  const derived = { ...kpi, grid_net_kw: missing(kpi.grid_import_kw) ? null : (kpi.grid_import_kw || 0) - (kpi.grid_export_kw || 0) };
  for (const node of view.querySelectorAll("[data-kpi]")) node.textContent = fmtKpi(node.dataset.kpi, derived[node.dataset.kpi]);
  for (const node of view.querySelectorAll(".node")) {
    const v = derived[node.querySelector("[data-kpi]").dataset.kpi];
    node.classList.toggle("active", !missing(v) && Math.abs(v) > 0.05);
  }
  const rows = (state.parkEnts || []).map((r) => {
    const live = entry && entry.enterprises && entry.enterprises[r.enterprise];
    const k = live || r.kpi || {};
    const consumed = k.consumed_today_kwh;
    return { ...r, k, consumed, intensity: missing(consumed) ? null : consumed / r.land_area_mu };
  });
  const key = state.rankBy === "intensity" ? "intensity" : "consumed";
  rows.sort((a, b) => (b[key] ?? -1) - (a[key] ?? -1));
  $("ranking").replaceChildren(...rows.map((r, i) => el("tr", { dataset: { enterprise: r.enterprise } },
    el("td", {}, String(i + 1)),
    el("td", {}, el("a", { href: `#/enterprise/${r.enterprise}` }, entName(r))),
    el("td", { class: "num" }, key === "intensity" ? (missing(r.intensity) ? "—" : `${fmtNumber(r.intensity, 1)} kWh/${t("mu")}`) : fmtEnergy(r.consumed)),
    el("td", { class: "num" }, fmtPower(r.k.load_kw)))));
}

// ---- enterprise view --------------------------------------------------------------------------------------------
async function showEnterprise(id) {
  const [info, devices] = await Promise.all([api(`/enterprises/${id}`), api(`/enterprises/${id}/devices?limit=1000`)]);
  state.ent = { info, devices: devices.items, latest: {}, alerts: [], kpi: null };
  $("ent-title").textContent = entName(info);
  try { state.ent.kpi = (await api(`/enterprises/${id}/kpi`)).kpi; } catch (e) { /* live frames fill in */ }
  renderEnterprise();
  state.entEval = null;
  renderEntEval();
  renderReportPeriods();
  api(`/enterprises/${id}/evaluation`).then((body) => {
    if (state.ent?.info.id === id) { state.entEval = body; renderEntEval(); renderReportPeriods(); }
  }).catch((e) => { state.entEval = { error: e }; renderEntEval(); });
  await Promise.all([refreshLatest(), refreshAlerts()]);
}
async function refreshLatest() {
  const ent = state.ent;
  if (!ent) return;
  await Promise.all(ent.devices.map(async (d) => {
    try { ent.latest[d.id] = await api(`/devices/${d.id}/latest`); } catch (e) { /* shown as no data */ }
  }));
  renderEnterprise();
}
async function refreshAlerts() {
  const ent = state.ent;
  if (!ent) return;
  const body = await apiOrEmpty(`/alerts?enterprise=${ent.info.id}&limit=50`);
  ent.alerts = body.items || [];
  renderAlerts($("ent-alerts"), ent.alerts, "alerts");
}
function online(device, latest) {
  if (!latest || !latest.ts) return false;
  return Date.now() - latest.ts < Math.max(60000, device.poll_interval_s * 1000 * 5);
}
function renderEnterprise() {
  const ent = state.ent;
  if (!ent) return;
  const kpi = ent.kpi || {};
  $("ent-title").textContent = entName(ent.info);
  for (const node of document.querySelectorAll("[data-ekpi]")) node.textContent = fmtKpi(node.dataset.ekpi, kpi[node.dataset.ekpi]);
  const cap = ent.info.contracted_capacity_kw;
  $("ent-demand").textContent = `${fmtPower(kpi.load_kw)} / ${cap ? fmtPower(cap) : "—"}`;
  const share = cap && !missing(kpi.load_kw) ? kpi.load_kw / cap : 0;
  const fill = $("ent-demand-fill");
  fill.style.width = `${Math.max(0, Math.min(1, share)) * 100}%`;
  fill.classList.toggle("met", share < 0.8);
  fill.classList.toggle("over", share >= 1);
  $("ent-devices").replaceChildren(...ent.devices.map((d) => {
    const latest = ent.latest[d.id];
    const f = (latest && latest.fields) || {};
    const reading = ["energy_import_kwh", "gas_volume_m3", "steam_t", "water_m3", "lel_pct", "temperature_c", "smoke_alarm", "soc_pct"]
      .find((k) => f[k]);
    const on = online(d, latest);
    return el("tr", { dataset: { device: d.id } },
      el("td", {}, el("a", { href: `#/device/${d.id}` }, d.name || d.id)),
      el("td", {}, t(`role_${d.role}`)),
      el("td", { class: "num", "data-field": "active_power_kw" }, f.active_power_kw ? fmtPower(f.active_power_kw.value) : "—"),
      el("td", { class: "num" }, reading ? fmtValue(reading, f[reading].value) : "—"),
      el("td", {}, el("span", { class: `badge ${on ? "on" : "off"}` }, t(on ? "online" : "offline"))));
  }));
}

// ---- alerts and safety events ---------------------------------------------------------------------------------
function renderAlerts(list, items, kind) {
  if (!items.length) { list.replaceChildren(el("li", { class: "empty" }, t("no_alerts"))); return; }
  list.replaceChildren(...items.map((a) => {
    const open = a.state === "raised";
    const ack = el("button", { type: "button", class: "ack", dataset: { alert: a.id }, onclick: () => acknowledge(kind, a) }, t("acknowledge"));
    ack.disabled = !open;
    return el("li", { class: `alert sev-${a.severity} state-${a.state}`, dataset: { alert: a.id, state: a.state } },
      el("span", { class: "sev" }, t(`sev_${a.severity}`)),
      el("div", { class: "alert-body" },
        el("div", { class: "msg" }, state.lang === "en" ? a.message_en || a.message_zh : a.message_zh || a.message_en),
        el("div", { class: "meta" }, ...[
          a.location || null,
          a.device ? el("a", { href: `#/device/${a.device}` }, a.device) : null,
          fmtDateTime(a.raised_at),
          a.count > 1 ? `×${a.count}` : null,
          t(`state_${a.state}`) + (a.acked_by ? ` (${a.acked_by})` : ""),
        ].filter((x) => x !== null).flatMap((x, i) => (i ? [" · ", x] : [x])))),
      ack);
  }));
}
async function acknowledge(kind, alert) {
  const path = kind === "safety" ? "safety-events" : "alerts";
  try {
    const updated = await api(`/${path}/${alert.id}/ack`, { method: "POST", body: JSON.stringify({ comment: "" }) });
    Object.assign(alert, updated && updated.id ? updated : { state: "acknowledged", acked_by: state.session.username });
  } catch (e) { console.error("acknowledge failed", e); }
  if (kind === "safety") renderSafety(); else renderAlerts($("ent-alerts"), state.ent.alerts, "alerts");
}
async function showEmergency() {
  const body = await apiOrEmpty("/safety-events?limit=200");
  state.safety = body.items || [];
  renderSafety();
}
function renderSafety() {
  const history = $("emg-history").checked;
  const items = state.safety.filter((a) => history || a.state === "raised" || a.state === "acknowledged");
  renderAlerts($("safety-list"), items, "safety");
}
function onAlertFrame(frame) {
  const a = frame.alert;
  if (!a || !a.id) return;
  const kind = frame.type === "safety" ? "safety" : "alerts";
  trackOpen(kind, a);
  if (state.openPending) state.openPending.push([kind, a]);
  renderOpenCounts();
  const merge = (list) => {
    const i = list.findIndex((x) => x.id === a.id);
    if (i >= 0) list[i] = a; else list.unshift(a);
  };
  if (frame.type === "safety") {
    merge(state.safety);
    if (state.view?.name === "emergency") renderSafety();
  }
  if (state.ent && a.enterprise === state.ent.info.id) {
    merge(state.ent.alerts);
    if (state.view?.name === "enterprise") renderAlerts($("ent-alerts"), state.ent.alerts, "alerts");
  }
}

// ---- open alerts and safety events of every park (overview cards, alerts view) ------------------------------
const OPEN_STATES = ["raised", "acknowledged"];
const isOpen = (a) => OPEN_STATES.includes(a.state);
const isStaff = () => !!state.session && (state.session.role === "operations" || state.session.role === "admin");
function openOf(kind, park) {
  return Object.values(state.open[kind]).filter((a) => !park || a.park === park);
}
function trackOpen(kind, a) {
  if (isOpen(a)) state.open[kind][a.id] = a; else delete state.open[kind][a.id];
}
// Loaded whenever the socket (re)opens, then kept current by its frames; frames arriving while the lists load
// are applied again on top, so a reload never undoes a newer event.
async function loadOpenAlerts() {
  if (!isStaff()) return;
  state.openPending = [];
  try {
    const lists = await Promise.all(["alerts", "safety-events"].flatMap((path) =>
      OPEN_STATES.map((st) => apiOrEmpty(`/${path}?state=${st}&limit=1000`))));
    state.open = { alerts: {}, safety: {} };
    lists.forEach((body, i) => { for (const a of body.items || []) trackOpen(i < 2 ? "alerts" : "safety", a); });
    for (const [kind, a] of state.openPending) trackOpen(kind, a);
  } finally {
    state.openPending = null;
  }
  renderOpenCounts();
}
function renderOpenCounts() {
  for (const park of state.parks) renderCard(park);
  const unacked = [...openOf("alerts"), ...openOf("safety")].filter((a) => a.state === "raised").length;
  const badge = $("nav-alerts-count");
  badge.textContent = String(unacked);
  badge.hidden = unacked === 0;
  if (state.view?.name === "alerts") renderAlertsView();
}
function showAlerts() { renderAlertsView(); }
const SEV_ORDER = { critical: 0, warning: 1, info: 2 };
function renderAlertsView() {
  const parkSelect = $("alerts-park");
  const chosen = parkSelect.value;
  parkSelect.replaceChildren(el("option", { value: "" }, t("all_parks")),
    ...state.parks.map((p) => el("option", { value: p.id }, parkName(p))));
  parkSelect.value = state.parks.some((p) => p.id === chosen) ? chosen : "";
  const kindSel = $("alerts-kind").value;
  const items = ["alerts", "safety"].filter((k) => !kindSel || k === kindSel)
    .flatMap((kind) => openOf(kind, parkSelect.value).map((a) => ({ kind, a })));
  // Unacknowledged first, then by severity, newest first.
  items.sort((x, y) => (x.a.state === "raised" ? 0 : 1) - (y.a.state === "raised" ? 0 : 1)
    || SEV_ORDER[x.a.severity] - SEV_ORDER[y.a.severity] || y.a.raised_at - x.a.raised_at);
  const body = $("alerts-body");
  const comments = {}; // keep what is being typed across live re-renders
  for (const input of body.querySelectorAll("input[data-comment]")) comments[input.dataset.comment] = input.value;
  const focused = document.activeElement?.dataset?.comment;
  const parks = Object.fromEntries(state.parks.map((p) => [p.id, p]));
  body.replaceChildren(...items.map(({ kind, a }) => alertRow(kind, a, parks, comments)));
  if (focused) body.querySelector(`input[data-comment="${focused}"]`)?.focus();
  $("alerts-empty").hidden = items.length > 0;
  $("alerts-summary").textContent = t("open_summary", { a: openOf("alerts", parkSelect.value).length, s: openOf("safety", parkSelect.value).length });
}
function alertRow(kind, a, parks, comments) {
  let handling;
  if (a.state === "raised") {
    const input = el("input", { class: "ack-comment", type: "text", maxlength: "2000", placeholder: t("ack_comment"),
      dataset: { comment: a.id } });
    input.value = comments[a.id] || "";
    const send = () => acknowledgeOpen(kind, a, input.value);
    input.addEventListener("keydown", (e) => { if (e.key === "Enter") send(); });
    handling = el("div", { class: "ack-form" }, input,
      el("button", { type: "button", class: "ack", dataset: { alert: a.id }, onclick: send }, t("acknowledge")));
  } else {
    handling = el("div", { class: "acked" }, t("acked_note", { who: a.acked_by || "—", at: a.acked_at ? fmtDateTime(a.acked_at) : "—" }),
      a.ack_comment ? el("div", { class: "muted small" }, a.ack_comment) : "");
  }
  const park = parks[a.park];
  const msg = state.lang === "en" ? a.message_en || a.message_zh : a.message_zh || a.message_en;
  return el("tr", { class: `alert-row sev-${a.severity} state-${a.state}`, dataset: { alert: a.id, kind, state: a.state, park: a.park } },
    el("td", {}, el("span", { class: `sev-badge sev-${a.severity}` }, t(`sev_${a.severity}`))),
    el("td", {}, t(`cat_${a.category}`)),
    el("td", {}, park ? parkName(park) : a.park, a.enterprise ? el("div", { class: "muted small" }, a.enterprise) : ""),
    el("td", {}, a.location || "—"),
    el("td", {}, a.device ? el("a", { href: `#/device/${a.device}` }, a.device) : "—"),
    el("td", { class: "msg" }, msg || a.rule, a.count > 1 ? el("span", { class: "muted" }, ` ×${a.count}`) : ""),
    el("td", { class: "num" }, missing(a.value) ? "—" : fmtValue(a.point || "", a.value)),
    el("td", { class: "num" }, missing(a.limit) ? "—" : fmtValue(a.point || "", a.limit)),
    el("td", { class: "nowrap" }, fmtDateTime(a.raised_at)),
    el("td", {}, el("span", { class: `state-badge state-${a.state}` }, t(`state_${a.state}`))),
    el("td", {}, handling));
}
async function acknowledgeOpen(kind, alert, comment) {
  const path = kind === "safety" ? "safety-events" : "alerts";
  try {
    const updated = await api(`/${path}/${alert.id}/ack`, { method: "POST", body: JSON.stringify({ comment: comment.trim() }) });
    trackOpen(kind, updated);
  } catch (e) {
    if (e.status === 409) { // acknowledged meanwhile (another operator): show what the store says
      try { trackOpen(kind, await api(`/${path}/${alert.id}`)); } catch (e2) { /* gone */ }
    } else {
      $("alerts-summary").textContent = t("ack_failed", { msg: e.body?.error?.message || e.message });
      return;
    }
  }
  renderOpenCounts();
}

// ---- device view -----------------------------------------------------------------------------------------------
async function showDevice(id) {
  const [device, latest] = await Promise.all([api(`/devices/${id}`), api(`/devices/${id}/latest`)]);
  $("dev-title").textContent = `${device.name || device.id} · ${t(`role_${device.role}`)} · ${device.location || ""}`;
  const on = online(device, latest);
  const badge = $("dev-online");
  badge.className = `badge ${on ? "on" : "off"}`;
  badge.textContent = t(on ? "online" : "offline");
  $("dev-latest").replaceChildren(...Object.entries(latest.fields).map(([name, fv]) =>
    el("tr", {}, el("td", {}, t(`pt_${name}`) === `pt_${name}` ? name : t(`pt_${name}`)), el("td", { class: "num" }, fmtValue(name, fv.value)),
      el("td", { class: "muted" }, fmtTime(fv.ts)))));
  const range = Number($("dev-range").value);
  const end = Date.now();
  const names = Object.keys(latest.fields).filter((n) => /_(kw|pct|ppm|c|v)$/.test(n)).slice(0, 3);
  const hist = names.length ? await api(`/devices/${id}/history?start=${end - range}&end=${end}&fields=${names.join(",")}`) : { points: [] };
  const colors = ["#33c3ff", "#3ee08f", "#ffb648"];
  const c = chart("dev-chart");
  if (c) c.setOption(lineOptions(names.map((n, i) => ({ name: n, color: colors[i],
    data: hist.points.filter((p) => p[n] !== undefined).map((p) => [p.ts, p[n]]) })),
  { min: end - range, max: end, unit: "", format: (v) => fmtNumber(v ?? 0, 2) }), { replaceMerge: ["series"] });
}

// ---- per-mu benefit (亩均效益), targets and the annual assessment ----------------------------------------------
function localName(o, zh = "name", en = "name_en") { return state.lang === "en" && o[en] ? o[en] : o[zh]; }
function fmtNum(v, digits = 2) { return missing(v) ? "—" : fmtNumber(v, Math.abs(v) >= 1000 ? 0 : digits); }
function indUnit(unit) { return state.lang === "en" ? unit.replace("万元", "10⁴ yuan").replace("亩", "mu").replace("人", "person") : unit; }
function evalPeriodText(body) {
  const [from, to] = (body.months || "").split("/");
  return from ? t("eval_period", { from, to }) : "";
}
function classBadge(code, big) {
  return el("span", { class: `class-badge class-${code || "none"}${big ? " big" : ""}` }, code || "—");
}
// The no-economic-data message with its hint (the same on every view).
function showEmpty(node, body) {
  const empty = !body || body.economic_data === false;
  node.hidden = !empty;
  if (empty) node.replaceChildren(el("b", {}, t("no_economy")), el("br"), el("span", { class: "hint" }, t("no_economy_hint")));
  return empty;
}

function renderParkEval() {
  const body = state.parkEval;
  const panel = $("park-eval-panel");
  if (body && body.error) { panel.hidden = body.error.status === 403; return; }
  panel.hidden = false;
  $("park-eval-period").textContent = body ? evalPeriodText(body) : "";
  $("park-eval-method").textContent = body ? body.scheme.revision : "";
  const rows = body ? body.items : [];
  const empty = body ? showEmpty($("park-eval-empty"), body) : false;
  $("park-eval-table").hidden = empty;
  $("park-eval").replaceChildren(...rows.map((r) => {
    const ind = Object.fromEntries(r.indicators.map((i) => [i.key, i]));
    const cell = (k) => el("td", { class: "num" }, ind[k] ? fmtNum(ind[k].value) : "—");
    return el("tr", { dataset: { enterprise: r.enterprise, class: r.class || "" } },
      el("td", {}, r.park_rank ? String(r.park_rank) : "—"),
      el("td", {}, el("a", { href: `#/enterprise/${r.enterprise}` }, localName(r))),
      el("td", { class: "muted" }, r.industry || ""),
      el("td", {}, r.evaluated ? el("span", { title: localName(r, "class_zh", "class_en") }, classBadge(r.class), " ",
        el("span", { class: "muted" }, localName(r, "class_zh", "class_en"))) : el("span", { class: "muted" }, t("not_evaluated"))),
      el("td", { class: "num score" }, r.evaluated ? fmtNumber(r.total, 1) : "—"),
      el("td", { class: "num" }, r.evaluated ? t("rank_of", { rank: r.rank, of: r.of }) : "—"),
      cell("tax_per_mu"), cell("value_added_per_mu"), cell("value_added_per_tce"));
  }));
}

function renderEntEval() {
  const body = state.entEval;
  const panel = $("ent-eval-panel");
  if (body && body.error) { panel.hidden = body.error.status === 403; return; }
  panel.hidden = false;
  $("ent-eval-period").textContent = body ? evalPeriodText(body) : "";
  const empty = body ? showEmpty($("ent-eval-empty"), body) : false;
  $("ent-eval-summary").hidden = $("ent-eval-table").hidden = empty;
  const ok = body && body.evaluated;
  $("ent-eval-class").replaceWith(Object.assign(classBadge(ok ? body.class : null, true), { id: "ent-eval-class" }));
  $("ent-eval-total").textContent = ok ? fmtNumber(body.total, 1) : "—";
  $("ent-eval-rank").textContent = ok ? t("rank_of", { rank: body.rank, of: body.of }) : "—";
  $("ent-eval-class-name").textContent = ok ? localName(body, "class_zh", "class_en") : (body ? t("not_evaluated") : "—");
  $("ent-eval").replaceChildren(...(body?.indicators || []).map((i) => {
    const ref = i.reference ? (i.reference.benchmark !== undefined ? fmtNum(i.reference.benchmark)
      : `${fmtNum(i.reference.min)} – ${fmtNum(i.reference.max)}`) : "—";
    return el("tr", { dataset: { indicator: i.key }, title: i.note || i.source },
      el("td", {}, localName(i, "name_zh", "name_en")),
      el("td", { class: "num" }, `${fmtNum(i.value)} `, el("span", { class: "muted" }, indUnit(i.unit))),
      el("td", { class: "num muted" }, ref),
      el("td", { class: "num" }, fmtNumber(i.weight, 0)),
      el("td", { class: "num score" }, fmtNumber(i.score, 1)));
  }));
}

// Report periods offered: the months of the evaluation period (newest first) and its years.
function renderReportPeriods() {
  const select = $("report-period");
  const chosen = select.value;
  const body = state.entEval && !state.entEval.error ? state.entEval : null;
  let last = body && body.months ? body.months.split("/")[1] : null;
  if (!last) { const d = new Date(); d.setDate(0); last = `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}`; }
  let [y, m] = last.split("-").map(Number);
  const options = [];
  const years = new Set();
  for (let k = 0; k < 12; k += 1) {
    const label = `${y}-${String(m).padStart(2, "0")}`;
    options.push([label, t("report_month", { m: label })]);
    years.add(y);
    [y, m] = m === 1 ? [y - 1, 12] : [y, m - 1];
  }
  for (const year of [...years].sort((a, b) => b - a)) options.push([String(year), t("report_year", { y: year })]);
  select.replaceChildren(...options.map(([v, text]) => el("option", { value: v }, text)));
  if (options.some(([v]) => v === chosen)) select.value = chosen;
}
function fmtBytes(n) { return n >= 1048576 ? `${fmtNumber(n / 1048576, 1)} MB` : `${fmtNumber(n / 1024, 0)} KB`; }
// Reports need the Authorization header, so they are fetched and handed to the browser as a blob: HTML opens in
// a new tab, PDF and Excel are saved.
async function downloadReport(format) {
  const ent = state.ent;
  if (!ent) return;
  const period = $("report-period").value;
  const status = $("report-status");
  const tab = format === "html" ? window.open("", "_blank") : null;
  status.textContent = t("report_loading");
  const path = `/reports/enterprise/${ent.info.id}?period=${encodeURIComponent(period)}&format=${format}&lang=${state.lang}`;
  try {
    const r = await fetch(API + path, { headers: { Authorization: `Bearer ${state.session.token}` } });
    const blob = await r.blob();
    document.body.dataset.lastReport = JSON.stringify({ path, status: r.status, type: r.headers.get("content-type"), bytes: blob.size });
    if (!r.ok) {
      let msg = `HTTP ${r.status}`;
      try { msg = JSON.parse(await blob.text()).error.message; } catch (e) { /* not JSON */ }
      throw new Error(msg);
    }
    const name = (/filename="([^"]+)"/.exec(r.headers.get("content-disposition") || "") || [])[1] || `report.${format}`;
    const url = URL.createObjectURL(blob);
    if (tab) tab.location.href = url;
    else el("a", { href: url, download: name }).click();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
    status.textContent = t("report_done", { name, size: fmtBytes(blob.size) });
  } catch (e) {
    if (tab) tab.close();
    status.textContent = t("report_failed", { msg: e.message });
  }
}

async function showTargets() {
  renderTargets();
  const [assessment, ...targets] = await Promise.all([
    api("/assessment"),
    ...state.parks.map((p) => api(`/parks/${p.id}/targets`).catch(() => null)),
  ]);
  state.targets = { assessment, parks: Object.fromEntries(state.parks.map((p, i) => [p.id, targets[i]])) };
  renderTargets();
}
function statusBadge(status) { return el("span", { class: `status status-${status}` }, t(`status_${status}`)); }
function progressRow(label, sub, progress, status, text) {
  const fill = el("div", { class: `fill status-${status}` });
  fill.style.width = `${Math.max(0, Math.min(1, progress || 0)) * 100}%`;
  return el("div", { class: "progress-row", dataset: { status } },
    el("div", { class: "progress-head" }, el("span", {}, label, " ", el("span", { class: "muted" }, sub)), statusBadge(status)),
    el("div", { class: "bar" }, fill),
    el("div", { class: "progress-text muted" }, text));
}
function targetCard(park, body) {
  const rows = [];
  for (const o of body?.output || []) {
    rows.push(progressRow(t("output_value"), t("target_due", { year: o.target_year }), o.progress, o.status,
      `${fmtNum(o.actual, 1)} / ${fmtNum(o.target, 0)} ${t("yi_yuan")} · ${missing(o.progress) ? "—" : fmtRatio(o.progress)}`));
  }
  for (const n of body?.new_energy || []) {
    rows.push(progressRow(t("new_energy_ratio"), `${t("target_due", { year: n.target_year })} · ${n.area || t("whole_park")}`,
      n.progress, n.status, `${fmtRatio(n.actual)} / ≥ ${fmtRatio(n.target)}`));
  }
  const g = body?.green_park;
  const green = g ? el("div", { class: "green-row" }, el("span", { class: "label" }, t("green_park")),
    el("span", {}, g.green_park ? t("green_yes") : t("green_no"), " · ", t("green_due", { year: g.target_year })), statusBadge(g.status)) : null;
  return el("article", { class: "panel target-card", dataset: { park: park.id } },
    el("h3", {}, parkName(park)),
    ...(rows.length ? rows : [el("p", { class: "muted" }, t("no_targets"))]),
    ...(green ? [green] : []));
}
function renderTargets() {
  const data = state.targets;
  const a = data?.assessment;
  const first = data && Object.values(data.parks).find((b) => b);
  $("targets-period").textContent = first ? t("measured_over", { from: first.months.split("/")[0], to: first.months.split("/")[1] }) : "";
  showEmpty($("targets-empty"), a || { economic_data: true });
  $("targets-parks").replaceChildren(...state.parks.map((p) => targetCard(p, data?.parks?.[p.id])));
  $("assess-year").textContent = a ? `${a.year}` + (a.data_months ? ` · ${t("measured_over", { from: a.data_months.split("/")[0], to: a.data_months.split("/")[1] })}` : "") : "";
  $("assess-source").textContent = a ? a.revision : "";
  const weights = a?.weights || [];
  $("assess-head").replaceChildren(el("th", {}, t("rank")), el("th", {}, t("park")),
    ...weights.map((w) => el("th", { class: "num" }, localName(w, "name_zh", "name_en"), el("br"),
      el("span", { class: "muted small" }, `${t("weight")} ${fmtNumber(w.weight, 0)}`))),
    el("th", { class: "num" }, t("eval_total")), el("th", {}, t("reward")));
  const names = Object.fromEntries(state.parks.map((p) => [p.id, p]));
  $("assess-body").replaceChildren(...(a?.items || []).map((r) => {
    const ind = Object.fromEntries(r.indicators.map((i) => [i.key, i]));
    return el("tr", { class: r.rewarded ? "rewarded" : "", dataset: { park: r.park, rank: r.rank ?? "" } },
      el("td", {}, r.rank ? String(r.rank) : "—"),
      el("td", {}, names[r.park] ? parkName(names[r.park]) : localName(r)),
      ...weights.map((w) => el("td", { class: "num" }, ind[w.key] ? fmtNumber(ind[w.key].score, 1) : "—",
        el("br"), el("span", { class: "muted small" }, ind[w.key] ? `${fmtNum(ind[w.key].value)} ${indUnit(w.unit)}` : ""))),
      el("td", { class: "num score" }, r.rank ? fmtNumber(r.total, 1) : "—"),
      el("td", {}, r.rewarded ? el("span", { class: "reward" }, t("rewarded")) : ""));
  }));
  $("assess-method").textContent = a ? t("assess_method", { n: a.reward_top, src: a.reward_source }) : "";
}

// ---- routing -----------------------------------------------------------------------------------------------------
const VIEWS = ["login", "overview", "park", "enterprise", "emergency", "device", "targets", "alerts"];
async function route() {
  let [, name, id] = (location.hash || "").split("/");
  if (!state.session) name = "login";
  else if (!VIEWS.includes(name) || name === "login" || (name === "alerts" && !isStaff())) { location.hash = home(); return; }
  state.view = { name, id: id && decodeURIComponent(id) };
  for (const v of VIEWS) $(`view-${v}`).hidden = v !== name;
  document.body.dataset.view = name;
  renderHeader();
  try {
    if (name === "overview") { renderChart(); }
    else if (name === "park") await showPark(state.view.id);
    else if (name === "enterprise") await showEnterprise(state.view.id);
    else if (name === "emergency") await showEmergency();
    else if (name === "targets") await showTargets();
    else if (name === "alerts") showAlerts();
    else if (name === "device") await showDevice(state.view.id);
  } catch (e) {
    if (e.status === 404) location.hash = home(); // out of scope or gone: back to where this user belongs
    else console.error("view failed", e);
  }
}
function renderHeader() {
  const s = state.session;
  const staff = s && (s.role === "operations" || s.role === "admin");
  $("nav").hidden = !staff;
  $("user").hidden = $("logout").hidden = !s;
  $("conn-status").hidden = !s;
  if (s) $("user").textContent = `${s.username} · ${t(`role_name_${s.role}`)}`;
  for (const a of document.querySelectorAll("[data-nav]")) a.classList.toggle("active", state.view?.name === a.dataset.nav);
  for (const a of document.querySelectorAll(".staff-only")) a.hidden = !staff;
}

function applyLanguage() {
  document.documentElement.lang = state.lang === "zh" ? "zh-CN" : "en";
  document.title = t("title");
  for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  const button = $("lang-toggle");
  button.textContent = t("lang_button");
  button.setAttribute("aria-label", t("lang_label"));
  for (const park of state.parks) renderCard(park);
  renderSummary();
  renderConnection();
  renderClock();
  renderHeader();
  renderChart();
  if (state.view?.name === "park") renderPark();
  if (state.view?.name === "enterprise") { renderEnterprise(); renderAlerts($("ent-alerts"), state.ent?.alerts || [], "alerts"); }
  if (state.view?.name === "emergency") renderSafety();
  if (state.view?.name === "park") renderParkEval();
  if (state.view?.name === "enterprise") { renderEntEval(); renderReportPeriods(); }
  if (state.view?.name === "targets") renderTargets();
  if (state.view?.name === "alerts") renderAlertsView();
  if (state.view?.name === "device") showDevice(state.view.id).catch(() => {});
}

function renderConnection() {
  const node = $("conn-status");
  node.className = `conn conn-${state.conn}`;
  node.dataset.state = state.conn;
  const text = $("conn-text");
  if (state.conn === "live") text.textContent = t("conn_live");
  else if (state.conn === "lost") text.textContent = t("conn_lost", { s: Math.max(0, Math.ceil((state.retryAt - Date.now()) / 1000)) });
  else text.textContent = t("conn_connecting");
}

// ---- live data -----------------------------------------------------------------------------------------------------
function onKpi(park, data) {
  if (!data) return;
  const ts = data.ts || Date.now();
  state.kpi[park] = { ts, kpi: data.kpi || null, enterprises: data.enterprises || {}, seen: Date.now() };
  if (data.kpi) {
    const points = (state.series[park] = state.series[park] || []);
    if (!points.length || points[points.length - 1][0] < ts) points.push([ts, data.kpi.load_kw, data.kpi.generation_kw]);
    while (points.length && points[0][0] < ts - WINDOW_MS) points.shift();
  }
  const parkObj = state.parks.find((p) => p.id === park);
  if (parkObj) renderCard(parkObj);
  renderSummary();
  if (park === state.selected && state.view?.name === "overview") renderChart();
  if (state.view?.name === "park" && state.view.id === park) renderPark();
  if (state.ent && data.enterprises && data.enterprises[state.ent.info.id]) {
    state.ent.kpi = data.enterprises[state.ent.info.id];
    if (state.view?.name === "enterprise") renderEnterprise();
  }
}

// WebSocket with reconnect: jittered exponential backoff, reset once a connection is open.
let attempt = 0;
function connect() {
  if (!state.session) return;
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  // The credential goes in the first frame, never in the URL (proxies and access logs record URLs).
  const ws = new WebSocket(`${scheme}://${location.host}${API}/live`);
  state.ws = ws;
  state.conn = "connecting";
  renderConnection();
  ws.onopen = () => {
    ws.send(JSON.stringify({ type: "auth", token: state.session.token }));
    attempt = 0; state.conn = "live"; renderConnection();
    loadOpenAlerts().catch((e) => console.error("open alerts", e)); // catch up on what happened while away
  };
  ws.onmessage = (event) => {
    let frame;
    try { frame = JSON.parse(event.data); } catch { return; }
    if (frame.type === "kpi") onKpi(frame.park, frame.data);
    else if (frame.type === "alert" || frame.type === "safety") onAlertFrame(frame);
  };
  ws.onclose = (event) => {
    if (event.code === 4401) { logout(); return; } // the session ended: sign in again
    const bound = Math.min(30000, 500 * 2 ** attempt);
    const delay = bound / 2 + Math.random() * bound / 2;
    attempt += 1;
    state.conn = "lost";
    state.retryAt = Date.now() + delay;
    renderConnection();
    setTimeout(connect, delay);
  };
}

async function start() {
  const parks = await api("/parks?limit=1000");
  state.parks = parks.items;
  state.selected = state.selected || (state.parks[0] && state.parks[0].id);
  buildCards();
  const s = state.session;
  if (s.role === "operations" || s.role === "admin") {
    try { // what is stored already, so cards are not blank until the next live frame
      for (const k of await api("/kpi")) if (k.kpi && !state.kpi[k.park]) state.kpi[k.park] = { ts: k.ts, kpi: k.kpi, seen: Date.now() };
    } catch (e) { /* live frames will fill in */ }
  }
  applyLanguage();
  connect();
}

function renderClock() {
  $("clock").textContent = new Date().toLocaleString(state.lang === "zh" ? "zh-CN" : "en-GB", { hour12: false });
}

let ticks = 0;
function tick() {
  ticks += 1;
  renderClock();
  for (const park of state.parks) {
    const entry = state.kpi[park.id];
    const card = $(`park-${park.id}`);
    if (card) card.classList.toggle("stale", !!entry && Date.now() - entry.seen > STALE_MS);
  }
  if (state.conn === "lost") renderConnection();
  if (state.view?.name === "overview" && state.selected) renderChart(); // slides the time window
  if (state.view?.name === "enterprise" && ticks % 10 === 0) refreshLatest().catch(() => {}); // meters are not on the socket
  if (state.session && state.session.expires && Date.now() > state.session.expires) logout();
}

$("lang-toggle").addEventListener("click", () => {
  state.lang = state.lang === "zh" ? "en" : "zh";
  localStorage.setItem("sp-lang", state.lang);
  applyLanguage();
});
$("logout").addEventListener("click", logout);
$("login-form").addEventListener("submit", login);
$("emg-history").addEventListener("change", () => showEmergency().catch(() => {}));
for (const b of document.querySelectorAll("#ent-reports-panel [data-format]")) {
  b.addEventListener("click", () => downloadReport(b.dataset.format));
}
$("alerts-park").addEventListener("change", renderAlertsView);
$("alerts-kind").addEventListener("change", renderAlertsView);
$("dev-range").addEventListener("change", () => showDevice(state.view.id).catch(() => {}));
for (const tab of document.querySelectorAll("[data-rank]")) {
  tab.addEventListener("click", () => {
    state.rankBy = tab.dataset.rank;
    for (const x of document.querySelectorAll("[data-rank]")) x.classList.toggle("active", x === tab);
    renderPark();
  });
}
window.addEventListener("hashchange", route);

(async () => {
  applyLanguage();
  if (state.session) {
    try { await start(); } catch (e) { console.error("start failed", e); }
  }
  await route();
  tick();
  setInterval(tick, 1000);
})();
