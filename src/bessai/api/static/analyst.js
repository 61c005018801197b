// The analyst page: pick a price series, a forecaster, a battery and a day or a range; see the
// forecast against the real price, the plan and SOC, each slot's reason, the KPIs, the back-test
// against perfect foresight and a size sweep. Same key and look as the dashboard; text is always
// set with textContent. Long ranges are jobs: the page polls their progress.
import { drawTimeChart, svgEl } from "./chart.js";
import { $, row } from "./dom.js";
import { hm, knownZone, zoneLabel } from "./time.js";

const KEY_STORE = "bessai.key";
const POLL_MS = 300;

const state = { key: sessionStorage.getItem(KEY_STORE), session: 0, catalog: null, day: null,
  filter: "all", job: 0, socStart: 50 };

async function api(method, path, body) {
  const init = { method, headers: { Authorization: "Bearer " + state.key } };
  if (body) { init.headers["Content-Type"] = "application/json"; init.body = JSON.stringify(body); }
  let response;
  try { response = await fetch("/api/v1" + path, init); } catch (e) { return { status: 0, data: null }; }
  let data = null;
  try { data = await response.json(); } catch (e) { data = null; }
  return { status: response.status, data };
}

function detail(res) {
  const d = res.data && res.data.detail;
  if (typeof d === "string") return d;
  if (Array.isArray(d)) return d.map((x) => (x.loc ? x.loc.slice(1).join(".") + ": " : "") + x.msg).join("; ");
  return res.status === 0 ? "the server does not answer" : "error " + res.status;
}

function say(text, cls) { $("study-result").className = cls || ""; $("study-result").textContent = text; }

// -- login ------------------------------------------------------------------------------------

async function login(key) {
  const session = ++state.session;
  state.key = key;
  const me = await api("GET", "/me");
  if (session !== state.session) return;
  if (me.status !== 200) {
    state.key = null;
    if (me.status !== 0) sessionStorage.removeItem(KEY_STORE);
    $("login-error").textContent = me.status === 401 ? "key not recognized (401)" : detail(me);
    return;
  }
  sessionStorage.setItem(KEY_STORE, key);
  $("who").textContent = me.data.name + " (" + me.data.role + ")";
  $("login").hidden = true;
  $("main").hidden = false;
  $("logout").hidden = false;
  await loadCatalog();
}

function logout() {
  state.session += 1;
  sessionStorage.removeItem(KEY_STORE);
  state.key = null;
  state.job += 1;
  for (const id of ["kpi-card", "prices-card", "slots-card", "curve-card"]) $(id).hidden = true;
  $("main").hidden = true;
  $("login").hidden = false;
  $("logout").hidden = true;
  $("who").textContent = "";
  $("key").value = "";
}

// -- the study form ---------------------------------------------------------------------------

async function loadCatalog(select) {
  const res = await api("GET", "/analyst/catalog");
  if (res.status !== 200) { say("catalog: " + detail(res), "error"); return; }
  state.catalog = res.data;
  $("to-dashboard").hidden = !res.data.gateway;
  $("series").replaceChildren(...res.data.series.map((s) =>
    new Option(s.node + " · " + s.first_day.slice(0, 4) + (s.last_day.slice(0, 4) !== s.first_day.slice(0, 4) ?
      "–" + s.last_day.slice(0, 4) : "") + " (" + s.name + ")", s.id)));
  $("forecaster").replaceChildren(...res.data.forecasters.map((f) => new Option(f, f)));
  $("forecaster").value = "week-mean";
  if (select) $("series").value = select;
  seriesChanged();
}

function series() { return state.catalog.series.find((s) => s.id === $("series").value); }
function zone() { const s = state.catalog && series(); return knownZone(s && s.timezone); }

function seriesChanged() {
  const s = series();
  if (!s) return;
  for (const id of ["day", "first", "last"]) { $(id).min = s.first_day; $(id).max = s.last_day; }
  // The first day has no history to forecast from: start a day later.
  const second = new Date(Date.parse(s.first_day) + 86400000).toISOString().slice(0, 10);
  const inside = (v) => v && v >= second && v <= s.last_day;
  const mid = s.last_day.slice(0, 8) + "14";
  if (!inside($("day").value)) $("day").value = mid <= s.last_day ? mid : s.last_day;
  if (!inside($("first").value)) $("first").value = s.last_day.slice(0, 8) + "01";
  if (!inside($("last").value)) $("last").value = s.last_day;
}

function number(id, label) {
  const text = $(id).value.trim();
  const n = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/.test(text) ? Number(text) : NaN;
  $(id).removeAttribute("aria-invalid");
  if (!Number.isFinite(n)) {
    $(id).setAttribute("aria-invalid", "true");
    throw new Error(label + ": \"" + text + "\" is not a number");
  }
  return n;
}

function battery() {
  return { power_kw: number("power", "power"), capacity_kwh: number("capacity", "capacity"),
    eta_charge: number("eta-c", "η charge"), eta_discharge: number("eta-d", "η discharge"),
    degradation_per_mwh: number("wear", "wear cost"), soc_min_pct: number("soc-min", "SOC min"),
    soc_max_pct: number("soc-max", "SOC max"), soc_initial_pct: number("soc-start", "SOC start") };
}

function study() {
  state.socStart = number("soc-start", "SOC start");
  return { series: $("series").value, forecaster: $("forecaster").value, battery: battery(),
    settlement: $("settlement").value };
}

async function upload(file) {
  if (!file) return;
  say("loading " + file.name + "…");
  const content = await file.text();
  const res = await api("POST", "/analyst/series", { name: file.name, content });
  if (res.status !== 200) { say(file.name + ": " + detail(res), "error"); return; }
  say("loaded " + file.name + ": " + res.data.node + ", " + res.data.first_day + " .. " + res.data.last_day, "ok");
  await loadCatalog(res.data.id);
}

// -- results ----------------------------------------------------------------------------------

function money(v, unit) {
  if (v === null || v === undefined) return "–";
  return v.toLocaleString("en-US", { maximumFractionDigits: 0 }) + " " + unit;
}

function renderKpis(k, title, unit) {
  const cur = unit.split("/")[0];
  $("kpi-card").hidden = false;
  $("kpi-title").textContent = title;
  $("k-net").textContent = money(k.net_revenue, cur);
  $("k-wear").textContent = money(k.wear_cost, cur);
  $("k-spread").textContent = k.spread_captured === null ? "–" : k.spread_captured.toFixed(1) + " " + unit;
  $("k-active").textContent = k.active_hours.toFixed(0) + " h";
  $("k-cycles").textContent = k.equivalent_full_cycles.toFixed(1);
  $("k-capture").textContent = k.capture_vs_daily_perfect === null ? "–" : (k.capture_vs_daily_perfect * 100).toFixed(1) + " %";
  $("k-perfect").textContent = money(k.perfect_daily_net, cur);
  $("k-confidence").textContent = k.mean_confidence === null ? "–" : k.mean_confidence.toFixed(2);
  $("kpi-note").textContent = k.days + " day" + (k.days > 1 ? "s" : "") + "; revenue " + money(k.revenue, cur) +
    " settled at the real prices; charged " + money(k.charged_kwh, "kWh") + ", discharged " +
    money(k.discharged_kwh, "kWh") + "; whole-period optimum " + money(k.whole_period_net, cur);
}

function drawSlots(slots, unit, plan) {
  const z = zone();
  const stepMs = slots.length > 1 ? Date.parse(slots[1].start_utc) - Date.parse(slots[0].start_utc) : 3600000;
  const points = slots.map((s) => ({ t: Date.parse(s.start_utc), price: s.price, fc: s.forecast, p10: s.p10,
    p90: s.p90, soc: s.soc_pct, kw: plan ? s.planned_kw : s.net_kw,
    psoc: plan ? s.planned_soc_pct : s.soc_pct }));
  const start = points[0].t, end = points[points.length - 1].t + stepMs;
  $("prices-card").hidden = false;  // before drawing: a chart takes its card's width
  // Price chart: the band first (behind), then the forecast and the real price.
  const price = drawTimeChart($("chart-price"), points, start, end, { height: 200, zone: z, gapMs: stepMs * 1.5,
    series: [{ key: "p10", cls: "edge" }, { key: "p90", cls: "edge" }, { key: "fc", cls: "fc" },
      { key: "price", cls: "real" }], yTitle: unit, minSpan: 10, yFormat: (v) => Number(v.toFixed(0)) + "" });
  const banded = points.filter((p) => p.p10 !== null && p.p90 !== null);
  if (banded.length) {
    const upper = banded.map((p) => price.X(p.t).toFixed(1) + "," + price.Y(p.p90).toFixed(1));
    const lower = banded.slice().reverse().map((p) => price.X(p.t).toFixed(1) + "," + price.Y(p.p10).toFixed(1));
    $("chart-price").insertBefore(svgEl("polygon", { points: upper.concat(lower).join(" "), class: "band" }),
      $("chart-price").querySelector("path.series"));
  }
  // Plan chart: power bars (up = charge) on the left axis, SOC on a right axis 0-100 %.
  const kw = points.map((p) => ({ t: p.t, kw: p.kw }));
  const plan_ = drawTimeChart($("chart-plan"), kw, start, end, { height: 200, zone: z, gapMs: stepMs * 1.5,
    series: [{ key: "kw", cls: "scale" }], yTitle: "power (kW)", minSpan: 1,
    yFormat: (v) => Number(v.toFixed(0)) + "" });
  const svg = $("chart-plan");
  const w = Math.max(1, plan_.X(start + stepMs) - plan_.X(start) - (slots.length > 100 ? 0 : 1));
  for (const p of kw) {
    if (!p.kw) continue;
    const y0 = plan_.Y(0), y = plan_.Y(p.kw);
    svg.appendChild(svgEl("rect", { x: plan_.X(p.t).toFixed(1), width: w.toFixed(1), y: Math.min(y, y0).toFixed(1),
      height: Math.abs(y - y0).toFixed(1), class: p.kw > 0 ? "bar-charge" : "bar-discharge" }));
  }
  const socY = (v) => plan_.y0 - v / 100 * (plan_.y0 - plan_.y1);
  // The SOC at the end of each slot, from the SOC the study starts at.
  let d = "M" + plan_.X(start).toFixed(1) + " " + socY(state.socStart).toFixed(1) + " ";
  for (const p of points) d += "L" + plan_.X(p.t + stepMs).toFixed(1) + " " + socY(p.psoc).toFixed(1) + " ";
  svg.appendChild(svgEl("path", { d, class: "series s-soc" }));
  for (const v of [0, 50, 100]) {
    svg.appendChild(svgEl("text", { x: plan_.x1 - 3, y: socY(v) + (v === 100 ? 12 : -3), class: "tick soc-tick",
      "text-anchor": "end" }, "SOC " + v + " %"));
  }
  $("prices-caption").textContent = "times in " + zoneLabel(start, z) + "; " +
    (plan ? "the plan as made (bars) and its SOC" : "what the plant executed (bars) and its SOC") +
    "; prices in " + unit;
}

function renderSlotsTable() {
  const day = state.day;
  if (!day) return;
  const z = zone();
  const shown = day.slots.filter((s) => state.filter === "all" || s.action === state.filter);
  $("slots").tBodies[0].replaceChildren(...shown.map((s) => {
    const tr = row([hm(Date.parse(s.start_utc), z), s.price.toFixed(2), s.forecast === null ? "–" : s.forecast.toFixed(2),
      s.p10 === null ? "–" : s.p10.toFixed(0) + "–" + s.p90.toFixed(0), (s.planned_kw / 1000).toFixed(2) + " MW",
      s.planned_soc_pct.toFixed(1) + " %", s.action, s.reason]);
    tr.className = "act-" + s.action;
    return tr;
  }));
  $("slots-count").textContent = shown.length + " of " + day.slots.length + " slots";
  $("slots-time").textContent = "time (" + z + ")";
  for (const b of document.querySelectorAll("[data-filter]")) b.classList.toggle("on", b.dataset.filter === state.filter);
}

async function showDay() {
  let body;
  try { body = Object.assign(study(), { day: $("day").value }); } catch (e) { say(e.message + "; nothing was sent.", "error"); return; }
  const job = ++state.job;
  say("planning " + body.day + "…");
  const res = await api("POST", "/analyst/day", body);
  if (job !== state.job) return;
  if (res.status !== 200) { say(detail(res), "error"); return; }
  const d = res.data;
  state.day = d;
  say(d.node + " · " + d.day + " · " + d.forecaster + ": plan " + d.plan_status + ", planned revenue " +
    money(d.plan_revenue, d.unit.split("/")[0]) + " at the forecast", "ok");
  renderKpis(d.kpis, "Day " + d.day + " · " + d.forecaster, d.unit);
  drawSlots(d.slots, d.unit, true);
  $("slots-card").hidden = false;
  $("curve-card").hidden = true;
  renderSlotsTable();
}

/** Submit a job and follow its progress until it is done; returns its result or null. */
async function follow(path, body, label) {
  const job = ++state.job;
  let res = await api("POST", path, body);
  $("progress-box").hidden = false;
  while (res.status === 202 && job === state.job) {
    const j = res.data;
    $("progress").max = Math.max(1, j.total);
    $("progress").value = j.done;
    $("progress-text").textContent = label + ": " + j.done + " of " + (j.total || "?") + " days, " + j.elapsed_s.toFixed(1) + " s";
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    res = await api("GET", "/analyst/jobs/" + j.id);
  }
  if (job !== state.job) return null;
  $("progress-box").hidden = true;
  if (res.status !== 200) { say(detail(res), "error"); return null; }
  if (res.data.state === "failed") { say(label + " failed: " + res.data.error, "error"); return null; }
  say(label + " done in " + res.data.elapsed_s.toFixed(1) + " s" + (res.data.cached ? " (from the cache)" : ""), "ok");
  return res.data.result;
}

async function runRange() {
  let body;
  try { body = Object.assign(study(), { first_day: $("first").value, last_day: $("last").value }); } catch (e) { say(e.message + "; nothing was sent.", "error"); return; }
  say("back-testing " + body.first_day + " .. " + body.last_day + "…");
  const r = await follow("/analyst/backtests", body, "back-test");
  if (!r) return;
  state.day = null;
  renderKpis(r.kpis, r.first_day + " .. " + r.last_day + " · " + r.forecaster, r.unit);
  $("slots-card").hidden = true;
  if (r.slots) drawSlots(r.slots, r.unit, false); else $("prices-card").hidden = true;
  drawCurve(r);
}

function drawCurve(r) {
  const z = zone(), cur = r.unit.split("/")[0];
  $("curve-card").hidden = false;
  const points = r.curve.map((p) => ({ t: Date.parse(p.day + "T12:00:00Z"), net: p.cumulative_net, perfect: p.cumulative_perfect }));
  const start = points[0].t - 43200000, end = points[points.length - 1].t + 43200000;
  drawTimeChart($("chart-curve"), points, start, end, { height: 200, zone: z, gapMs: 86400000 * 40,
    series: [{ key: "perfect", cls: "perfect" }, { key: "net", cls: "net" }], yTitle: cur, minSpan: 10,
    yFormat: (v) => Math.abs(v) >= 10000 ? (v / 1000).toFixed(0) + "k" : Number(v.toFixed(0)) + "" });
  $("curve-card").hidden = false;
  $("curve-caption").textContent = r.curve.length + " days, " + r.node + ": " + money(r.kpis.net_revenue, cur) +
    " against " + money(r.kpis.perfect_daily_net, cur) + " with perfect foresight" +
    (r.excluded.length ? "; left out: " + r.excluded.join(", ") : "");
}

// -- size sweep -------------------------------------------------------------------------------

function sizes() {
  const b = battery();
  const values = $("sweep-values").value.split(/[,\s]+/).filter((v) => v !== "").map(Number);
  if (!values.length || values.some((v) => !Number.isFinite(v) || v <= 0)) throw new Error("sizes: give positive numbers separated by commas");
  const duration = b.capacity_kwh / b.power_kw;
  return $("sweep-vary").value === "capacity" ? values.map((v) => ({ power_kw: b.power_kw, capacity_kwh: v })) :
    values.map((v) => ({ power_kw: v, capacity_kwh: v * duration }));
}

async function runSweep() {
  let body;
  try { body = Object.assign(study(), { first_day: $("first").value, last_day: $("last").value, sizes: sizes() }); } catch (e) { say(e.message + "; nothing was sent.", "error"); return; }
  say("sweeping " + body.sizes.length + " sizes over " + body.first_day + " .. " + body.last_day + "…");
  const r = await follow("/analyst/sweeps", body, "size sweep");
  if (r) drawSweep(r, $("sweep-vary").value);
}

function drawSweep(r, vary) {
  const svg = $("chart-sweep"), cur = r.unit.split("/")[0];
  svg.toggleAttribute("hidden", false);  // before measuring its width
  const W = Math.max(320, Math.round(svg.getBoundingClientRect().width) || 600), H = 200;
  const m = { l: 60, r: 44, t: 10, b: 30 };
  svg.setAttribute("viewBox", "0 0 " + W + " " + H);
  const n = r.points.length, band = (W - m.l - m.r) / n;
  const hi = Math.max(1, ...r.points.map((p) => p.kpis.net_revenue));
  const y = (v) => H - m.b - Math.max(0, v) / hi * (H - m.b - m.t);
  const yc = (v) => H - m.b - v * (H - m.b - m.t);
  const out = [svgEl("line", { x1: m.l, x2: W - m.r, y1: H - m.b, y2: H - m.b, class: "axis" })];
  for (const f of [0, 0.5, 1]) {
    out.push(svgEl("text", { x: m.l - 6, y: y(hi * f) + 4, "text-anchor": "end", class: "tick" }, money(hi * f, "")));
    out.push(svgEl("text", { x: W - m.r + 4, y: yc(f) + 4, class: "tick" }, (f * 100) + "%"));
  }
  out.push(svgEl("text", { x: 12, y: H / 2, transform: "rotate(-90 12 " + H / 2 + ")", "text-anchor": "middle", class: "axis-title" }, cur));
  let d = "";
  r.points.forEach((p, i) => {
    const x = m.l + i * band;
    out.push(svgEl("rect", { x: x + band * 0.15, width: band * 0.7, y: y(p.kpis.net_revenue), height: H - m.b - y(p.kpis.net_revenue), class: "bar-net" }));
    const label = vary === "capacity" ? p.capacity_kwh + " kWh" : p.power_kw + " kW";
    out.push(svgEl("text", { x: x + band / 2, y: H - 10, "text-anchor": "middle", class: "tick" }, label));
    const c = p.kpis.capture_vs_daily_perfect;
    if (c !== null) d += (d ? "L" : "M") + (x + band / 2).toFixed(1) + " " + yc(c).toFixed(1) + " ";
  });
  out.push(svgEl("path", { d: d || "M0 0", class: "series s-perfect" }));
  svg.replaceChildren(...out);
  svg.toggleAttribute("hidden", false);
  $("sweep-legend").hidden = false;
  $("sweep-table").hidden = false;
  $("sweep-table").tBodies[0].replaceChildren(...r.points.map((p) => row([
    p.power_kw + " kW", p.capacity_kwh + " kWh", p.duration_h + " h", money(p.kpis.net_revenue, cur),
    p.net_per_kwh.toFixed(2) + " " + cur, p.kpis.capture_vs_daily_perfect === null ? "–" :
      (p.kpis.capture_vs_daily_perfect * 100).toFixed(1) + " %", p.kpis.equivalent_full_cycles.toFixed(0)])));
}

// -- wiring -----------------------------------------------------------------------------------

function bind() {
  $("login-form").addEventListener("submit", (e) => { e.preventDefault(); login($("key").value.trim()); });
  $("logout").addEventListener("click", logout);
  $("series").addEventListener("change", seriesChanged);
  $("upload").addEventListener("change", (e) => upload(e.target.files[0]));
  $("show-day").addEventListener("click", showDay);
  $("run-range").addEventListener("click", runRange);
  $("run-sweep").addEventListener("click", runSweep);
  $("sweep-vary").addEventListener("change", () => {
    const capacity = $("sweep-vary").value === "capacity";
    $("sweep-values-label").firstChild.textContent = capacity ? "Capacities kWh " : "Powers kW ";
    $("sweep-values").value = capacity ? "500, 1000, 2000, 3000, 4000, 5000" : "250, 500, 1000, 1500, 2000";
  });
  for (const b of document.querySelectorAll("[data-filter]")) {
    b.addEventListener("click", () => { state.filter = b.dataset.filter; renderSlotsTable(); });
  }
}

bind();
if (state.key) login(state.key);
