// The fleet page: a table of sites with a 24 h SOC sparkline each, refreshed every 5 s.
// The read key lives in sessionStorage (this tab only) and travels in the Authorization header;
// every text from the API is set as text, never as HTML.
"use strict";

const KEY_STORE = "bessai.fleet.key";
const REFRESH_MS = 5000;
const SPARK_MS = 60000;
let key = sessionStorage.getItem(KEY_STORE);
const sparks = new Map(); // site -> {at, points}

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

async function api(path) {
  const res = await fetch("/api/v1" + path, { headers: { Authorization: "Bearer " + key } });
  if (res.status === 401) { logout(); throw new Error("API key not recognized"); }
  if (!res.ok) throw new Error((await res.json()).detail || res.statusText);
  return res.json();
}

function fmt(value, digits) {
  return value === null || value === undefined ? "-" : Number(value).toFixed(digits);
}

function sparkline(points) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("viewBox", "0 0 120 24");
  const values = points.map((p) => p.values.soc_pct).filter((v) => v !== null);
  if (values.length > 1) {
    const line = document.createElementNS(ns, "polyline");
    // Scaled to the site's own range (at least 5 points of SOC), so a slow drift shows.
    const low = Math.min(...values);
    const span = Math.max(5, Math.max(...values) - low);
    const step = 120 / (values.length - 1);
    const y = (v) => (23 - ((v - low) / span) * 22).toFixed(1);
    line.setAttribute("points", values.map((v, i) => `${(i * step).toFixed(1)},${y(v)}`).join(" "));
    svg.appendChild(line);
  }
  return svg;
}

async function sparkFor(site) {
  const cached = sparks.get(site);
  if (cached && Date.now() - cached.at < SPARK_MS) return cached.points;
  const data = await api(`/fleet/sites/${encodeURIComponent(site)}/history?fields=soc_pct&step_s=900`);
  sparks.set(site, { at: Date.now(), points: data.points });
  return data.points;
}

function renderTotals(t) {
  const box = document.getElementById("totals");
  box.replaceChildren();
  const items = [
    ["Sites", `${t.sites_online} online / ${t.sites}`],
    ["Stale", t.sites_stale],
    ["In SAFE", t.sites_safe],
    ["Capacity", `${fmt(t.capacity_kwh, 1)} kWh`],
    ["SOC (weighted)", `${fmt(t.soc_pct, 1)} %`],
    [`Charge, ${t.horizon_h} h`, `${fmt(t.charge_flex_kwh, 1)} kWh`],
    [`Discharge, ${t.horizon_h} h`, `${fmt(t.discharge_flex_kwh, 1)} kWh`],
  ];
  for (const [label, value] of items) {
    const div = el("div", label);
    div.appendChild(el("b", value));
    box.appendChild(div);
  }
}

async function render() {
  const fleet = await api("/fleet");
  document.getElementById("at").textContent = "as of " + new Date(fleet.at).toLocaleString();
  renderTotals(fleet.totals);
  const body = document.querySelector("#sites tbody");
  const rows = [];
  for (const s of fleet.sites) {
    const tr = el("tr");
    tr.appendChild(el("td", s.site_id));
    tr.appendChild(el("td", s.stale ? "STALE" : "online", s.stale ? "stale" : "online"));
    tr.appendChild(el("td", new Date(s.last_seen).toLocaleString()));
    tr.appendChild(el("td", fmt(s.soc_pct, 1), "num"));
    const spark = el("td");
    sparkFor(s.site_id).then((p) => spark.appendChild(sparkline(p))).catch(() => {});
    tr.appendChild(spark);
    tr.appendChild(el("td", s.battery_power_w === null ? "-" : fmt(s.battery_power_w / 1000, 2), "num"));
    tr.appendChild(el("td", fmt(s.capacity_kwh, 1), "num"));
    tr.appendChild(el("td", s.safety_state || "-", s.safety_state === "safe" ? "safe" : ""));
    tr.appendChild(el("td", s.alarms.join("; ") || "-"));
    tr.appendChild(el("td", `${fmt(s.charge_flex_kwh, 1)} / ${fmt(s.discharge_flex_kwh, 1)}`, "num"));
    rows.push(tr);
  }
  body.replaceChildren(...rows);
}

async function tick() {
  if (!key) return;
  try {
    await render();
    document.getElementById("error").textContent = "";
  } catch (err) {
    document.getElementById("error").textContent = err.message;
  }
}

function logout() {
  key = null;
  sessionStorage.removeItem(KEY_STORE);
  document.getElementById("login").hidden = false;
  document.getElementById("logout").hidden = true;
}

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("login");
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    key = document.getElementById("key").value.trim();
    sessionStorage.setItem(KEY_STORE, key);
    form.hidden = true;
    document.getElementById("logout").hidden = false;
    tick();
  });
  document.getElementById("logout").addEventListener("click", logout);
  if (key) document.getElementById("logout").hidden = false; else form.hidden = false;
  tick();
  setInterval(tick, REFRESH_MS);
});
