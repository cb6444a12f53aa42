// SmartPark dashboard: park cards and a live chart fed by the /api/v1/live WebSocket (no polling).
"use strict";

const WINDOW_MS = 10 * 60 * 1000; // chart history kept per park
const STALE_MS = 15 * 1000; // a card whose last frame is older is dimmed
const state = {
  lang: localStorage.getItem("sp-lang") || (new URLSearchParams(location.search).get("lang") === "en" ? "en" : "zh"),
  parks: [], // registry parks, in order
  kpi: {}, // park id -> {ts, kpi}
  series: {}, // park id -> [[ts, load, generation], ...]
  selected: null,
  conn: "connecting",
  retryAt: 0,
  chart: null,
};

function t(key, vars) {
  const table = window.I18N[state.lang] || window.I18N.zh;
  let text = table[key] ?? window.I18N.zh[key] ?? key;
  for (const [k, v] of Object.entries(vars || {})) text = text.replace(`{${k}}`, v);
  return text;
}

// Formatting: power in kW or MW, energy in kWh or MWh, ratio in percent.
function fmtNumber(value, digits) {
  return value.toLocaleString(state.lang === "zh" ? "zh-CN" : "en-US",
    { minimumFractionDigits: digits, maximumFractionDigits: digits });
}
function fmtPower(kw) {
  if (kw === null || kw === undefined || Number.isNaN(kw)) return "—";
  return Math.abs(kw) >= 1000 ? `${fmtNumber(kw / 1000, 2)} MW` : `${fmtNumber(kw, 1)} kW`;
}
function fmtEnergy(kwh) {
  if (kwh === null || kwh === undefined) return "—";
  return Math.abs(kwh) >= 1000 ? `${fmtNumber(kwh / 1000, 2)} MWh` : `${fmtNumber(kwh, 1)} kWh`;
}
function fmtRatio(r) {
  return r === null || r === undefined ? "—" : `${fmtNumber(r * 100, 1)}%`;
}
function fmtTime(ms) {
  return new Date(ms).toLocaleTimeString(state.lang === "zh" ? "zh-CN" : "en-GB", { hour12: false });
}

// The target shown: the nearest year not yet past; once all are past, the latest one still stands.
function currentTarget(park) {
  const targets = [...(park.new_energy_targets || [])].sort((a, b) => a.year - b.year);
  if (!targets.length) return null;
  const year = new Date().getFullYear();
  return targets.find((x) => x.year >= year) || targets[targets.length - 1];
}

function parkName(park) {
  return state.lang === "en" && park.name_en ? park.name_en : park.name;
}

function buildCards() {
  const container = document.getElementById("parks");
  const template = document.getElementById("park-card");
  container.replaceChildren();
  for (const park of state.parks) {
    const card = template.content.firstElementChild.cloneNode(true);
    card.id = `park-${park.id}`;
    card.dataset.park = park.id;
    card.addEventListener("click", () => select(park.id));
    card.addEventListener("keydown", (e) => { if (e.key === "Enter") select(park.id); });
    container.appendChild(card);
    renderCard(park);
  }
}

function renderCard(park) {
  const card = document.getElementById(`park-${park.id}`);
  if (!card) return;
  const entry = state.kpi[park.id];
  const kpi = entry ? entry.kpi : {};
  card.querySelector(".park-name").textContent = parkName(park);
  card.querySelector(".park-name").title = parkName(park);
  for (const el of card.querySelectorAll("[data-kpi]")) {
    const key = el.dataset.kpi;
    const v = kpi[key];
    el.textContent = key.endsWith("_kwh") ? fmtEnergy(v) : key.startsWith("new_energy_ratio") ? fmtRatio(v) : fmtPower(v);
  }
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
}

function renderSummary() {
  let load = 0, gen = 0, imp = 0, n = 0;
  for (const park of state.parks) {
    const entry = state.kpi[park.id];
    if (!entry) continue;
    n += 1;
    load += entry.kpi.load_kw || 0;
    gen += entry.kpi.generation_kw || 0;
    imp += entry.kpi.grid_import_kw || 0;
  }
  document.getElementById("sum-load").textContent = n ? fmtPower(load) : "—";
  document.getElementById("sum-gen").textContent = n ? fmtPower(gen) : "—";
  document.getElementById("sum-import").textContent = n ? fmtPower(imp) : "—";
  document.getElementById("sum-parks").textContent = `${n} / ${state.parks.length}`;
}

function applyLanguage() {
  document.documentElement.lang = state.lang === "zh" ? "zh-CN" : "en";
  document.title = t("title");
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  const button = document.getElementById("lang-toggle");
  button.textContent = t("lang_button");
  button.setAttribute("aria-label", t("lang_label"));
  for (const park of state.parks) renderCard(park);
  renderSummary();
  renderConnection();
  renderClock();
  renderChart();
}

function renderConnection() {
  const el = document.getElementById("conn-status");
  el.className = `conn conn-${state.conn}`;
  el.dataset.state = state.conn;
  const text = document.getElementById("conn-text");
  if (state.conn === "live") text.textContent = t("conn_live");
  else if (state.conn === "lost") {
    text.textContent = t("conn_lost", { s: Math.max(0, Math.ceil((state.retryAt - Date.now()) / 1000)) });
  } else text.textContent = t("conn_connecting");
}

// ---- chart -------------------------------------------------------------------------------------------
function initChart() {
  if (!window.echarts) return;
  const el = document.getElementById("chart");
  state.chart = echarts.init(el, null, { renderer: "canvas" });
  // The panel's size changes with the layout (cards arriving, language, window), not only on window resize.
  new ResizeObserver(() => { state.chart.resize(); renderChart(); }).observe(el);
}

function renderChart() {
  const park = state.parks.find((p) => p.id === state.selected);
  document.getElementById("chart-park").textContent = park ? parkName(park) : "";
  if (!state.chart) return;
  const data = state.series[state.selected] || [];
  const rootPx = parseFloat(getComputedStyle(document.documentElement).fontSize);
  const axis = { color: "#8aa0bd", fontSize: rootPx * 0.85 };
  const now = Date.now();
  state.chart.setOption({
    backgroundColor: "transparent",
    animation: false,
    textStyle: { fontSize: rootPx * 0.9 },
    tooltip: { trigger: "axis", valueFormatter: (v) => fmtPower(v) },
    legend: { data: [t("series_load"), t("series_generation")], textStyle: { color: "#e3ecf7", fontSize: rootPx * 0.9 }, top: 0 },
    grid: { left: rootPx * 4.5, right: rootPx * 1.5, top: rootPx * 2.5, bottom: rootPx * 2 },
    xAxis: { type: "time", min: now - WINDOW_MS, max: now, axisLabel: axis, axisLine: { lineStyle: { color: "#1d3352" } } },
    yAxis: { type: "value", name: "kW", nameTextStyle: axis, axisLabel: axis, splitLine: { lineStyle: { color: "#15263f" } } },
    series: [
      { name: t("series_load"), type: "line", showSymbol: false, lineStyle: { width: 2 }, color: "#33c3ff",
        data: data.map((d) => [d[0], d[1]]) },
      { name: t("series_generation"), type: "line", showSymbol: false, lineStyle: { width: 2 }, color: "#3ee08f",
        areaStyle: { opacity: 0.12 }, data: data.map((d) => [d[0], d[2]]) },
    ],
  }, { replaceMerge: ["series"] });
}

function select(parkId) {
  state.selected = parkId;
  for (const park of state.parks) renderCard(park);
  renderChart();
}

// ---- data --------------------------------------------------------------------------------------------
function onKpi(park, data) {
  if (!data || typeof data.kpi !== "object") return;
  const ts = data.ts || Date.now();
  state.kpi[park] = { ts, kpi: data.kpi, seen: Date.now() };
  const points = (state.series[park] = state.series[park] || []);
  if (!points.length || points[points.length - 1][0] < ts) points.push([ts, data.kpi.load_kw, data.kpi.generation_kw]);
  while (points.length && points[0][0] < ts - WINDOW_MS) points.shift();
  const parkObj = state.parks.find((p) => p.id === park);
  if (parkObj) renderCard(parkObj);
  renderSummary();
  if (park === state.selected) renderChart();
}

// WebSocket with reconnect: jittered exponential backoff, reset once a connection is open.
let attempt = 0;
function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/api/v1/live`);
  state.conn = "connecting";
  renderConnection();
  ws.onopen = () => { attempt = 0; state.conn = "live"; renderConnection(); };
  ws.onmessage = (event) => {
    let frame;
    try { frame = JSON.parse(event.data); } catch { return; }
    if (frame.type === "kpi") onKpi(frame.park, frame.data);
  };
  ws.onclose = () => {
    const bound = Math.min(30000, 500 * 2 ** attempt);
    const delay = bound / 2 + Math.random() * bound / 2;
    attempt += 1;
    state.conn = "lost";
    state.retryAt = Date.now() + delay;
    renderConnection();
    setTimeout(connect, delay);
  };
}

async function loadInitial() {
  const parks = await fetch("/api/v1/parks?limit=1000").then((r) => r.json());
  state.parks = parks.items;
  state.selected = state.selected || (state.parks[0] && state.parks[0].id);
  buildCards();
  try { // what is stored already, so cards are not blank until the next live frame
    const kpis = await fetch("/api/v1/kpi").then((r) => r.json());
    for (const k of kpis) if (k.kpi && !state.kpi[k.park]) state.kpi[k.park] = { ts: k.ts, kpi: k.kpi, seen: Date.now() };
  } catch (e) { /* live frames will fill in */ }
}

function renderClock() {
  document.getElementById("clock").textContent =
    new Date().toLocaleString(state.lang === "zh" ? "zh-CN" : "en-GB", { hour12: false });
}

function tick() {
  renderClock();
  for (const park of state.parks) {
    const entry = state.kpi[park.id];
    const card = document.getElementById(`park-${park.id}`);
    if (card) card.classList.toggle("stale", !!entry && Date.now() - entry.seen > STALE_MS);
  }
  if (state.conn === "lost") renderConnection();
  if (state.chart && state.selected) renderChart(); // slides the time window; data still only from the socket
}

document.getElementById("lang-toggle").addEventListener("click", () => {
  state.lang = state.lang === "zh" ? "en" : "zh";
  localStorage.setItem("sp-lang", state.lang);
  applyLanguage();
});

(async () => {
  initChart();
  try { await loadInitial(); } catch (e) { console.error("registry not loaded", e); }
  applyLanguage();
  connect();
  tick();
  setInterval(tick, 1000);
})();
