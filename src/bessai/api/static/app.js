// open-bess-edge dashboard: plain JavaScript modules, no build step, nothing loaded from elsewhere.
// The API key lives in sessionStorage (this tab only) and travels in the Authorization header;
// the live stream is read with fetch() because EventSource cannot send headers.
// Every text that comes from a user or a device is set with textContent, never as markup.
import { drawTimeChart } from "./chart.js";
import { $, kw, li, row } from "./dom.js";
import { refreshCarbon, renderCarbon } from "./carbon.js";
import { refreshVpp, renderVpp } from "./vpp.js";
import { renderSchedule } from "./schedule.js";
import { dateTime, hms, knownZone, offsetLabel, zoneLabel } from "./time.js";

const KEY_STORE = "bessai.key";
const HISTORY_MIN = 10;
const MIN_SPAN_MS = 2 * 60 * 1000;
const STALE_FLOOR_S = 6;  // data older than max(this, 3 cycles) is not live
const RETRY_MS = 2000;
const SLOW_MS = 5000;

const state = {
  key: sessionStorage.getItem(KEY_STORE),
  session: 0,         // bumped by login and logout: answers of an older session are dropped
  site: null,
  sites: [],
  latest: {},         // site -> last status object from the stream
  history: {},        // site -> [{t, soc, bat, pv, grid, load, sp}] oldest first, t in gateway ms
  historyLoaded: {},  // site -> true once the gateway's history was merged in
  resolutionS: {},    // site -> seconds between the gateway's history points (its cycle, or 1 s)
  stream: null,       // AbortController of the live stream
  streamOpen: false,
  unreachableSince: null,  // gateway ms when the stream broke
  refusedWhy: null,   // why the gateway refused the stream, when it answered but said no
  skewMs: 0,          // this browser's clock minus the gateway's
  slowTimer: null,
};

const gatewayNow = () => Date.now() - state.skewMs;
const zone = () => knownZone(state.latest[state.site] && state.latest[state.site].timezone);

function headers(extra) {
  return Object.assign({ Authorization: "Bearer " + state.key }, extra || {});
}

/** One API call; never throws: an unreachable gateway is status 0. */
async function api(method, path, body) {
  const init = { method, headers: headers(body ? { "Content-Type": "application/json" } : {}) };
  if (body) init.body = JSON.stringify(body);
  let response;
  try {
    response = await fetch("/api/v1" + path, init);
  } catch (e) {
    return { status: 0, data: null };
  }
  let data = null;
  try { data = await response.json(); } catch (e) { data = null; }
  return { status: response.status, data };
}

function detail(data) {
  if (!data) return "";
  if (typeof data.detail === "string") return data.detail;
  if (Array.isArray(data.detail)) return data.detail.map((d) => d.msg).join("; ");
  return "";
}

// -- login and logout -------------------------------------------------------------------------

async function login(key) {
  const session = ++state.session;
  state.key = key;
  const me = await api("GET", "/me");
  if (session !== state.session) return;
  if (me.status !== 200) {
    state.key = null;
    // A gateway that does not answer has not refused the key: a reload may try it again.
    if (me.status !== 0) sessionStorage.removeItem(KEY_STORE);
    const why = me.status === 401 ? "key not recognized (401)" :
      me.status === 429 ? "too many failed attempts; wait and retry (429)" :
      me.status === 0 ? "the gateway does not answer" : "login failed (" + me.status + ")";
    $("login-error").textContent = why + (detail(me.data) ? ": " + detail(me.data) : "");
    return;
  }
  sessionStorage.setItem(KEY_STORE, key);
  $("who").textContent = me.data.name + " (" + me.data.role + ")";
  $("login-error").textContent = "";
  $("login").hidden = true;
  $("main").hidden = false;
  $("logout").hidden = false;
  $("clock").hidden = false;
  setConn("connecting");
  startStream(session);
  refreshSlow(session);
}

/** Forget the key, close the stream, and clear every value: nothing stale stays on screen. */
function logout(message) {
  state.session += 1;
  sessionStorage.removeItem(KEY_STORE);
  state.key = null;
  if (state.stream) state.stream.abort();
  clearTimeout(state.slowTimer);
  Object.assign(state, { stream: null, streamOpen: false, site: null, sites: [], latest: {},
    history: {}, historyLoaded: {}, resolutionS: {}, unreachableSince: null, refusedWhy: null });
  clearPage();
  setConn("logged out");
  $("main").hidden = true;
  $("login").hidden = false;
  $("logout").hidden = true;
  $("clock").hidden = true;
  $("who").textContent = "";
  $("key").value = "";
  $("login-error").textContent = message || "";
}

function clearPage() {
  render(null);
  updateSiteList();
  renderAlerts([]);
  renderSchedule(null, zone());
  renderCarbon(null, null, null);
  renderVpp(null, null);
  $("commands").tBodies[0].replaceChildren();
  $("control-result").textContent = "";
  $("clock").textContent = "";
  $("banner").hidden = true;
  $("main").classList.remove("stale");
}

// -- live stream (server-sent events over fetch) ----------------------------------------------

async function startStream(session) {
  const controller = new AbortController();
  state.stream = controller;
  while (session === state.session && !controller.signal.aborted) {
    try {
      const response = await fetch("/api/v1/events", { headers: headers(), signal: controller.signal });
      if (response.status === 401) { logout("key no longer valid (401)"); return; }
      if (!response.ok) {
        let why = "";
        try { why = detail(await response.json()); } catch (e) { why = ""; }
        state.refusedWhy = "the gateway refused the live stream (" + response.status + (why ? ": " + why : "") + ")";
        throw new Error(state.refusedWhy);
      }
      state.refusedWhy = null;
      state.streamOpen = true;
      state.historyLoaded = {};  // the gateway may have restarted: fetch its history again
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
          if (session === state.session) handleEvent(block, session);
        }
      }
    } catch (e) {
      if (controller.signal.aborted) return;
      if (!(e instanceof Error) || !e.message.startsWith("the gateway refused")) state.refusedWhy = null;
    }
    if (session !== state.session) return;
    if (state.streamOpen || state.unreachableSince === null) state.unreachableSince = gatewayNow();
    state.streamOpen = false;
    showLiveness();
    await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
  }
}

function handleEvent(block, session) {
  let name = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (line.startsWith("event:")) name = line.slice(6).trim();
    else if (line.startsWith("data:")) data.push(line.slice(5).trim());
  }
  if (name !== "status" || !data.length) return;
  let payload;
  try { payload = JSON.parse(data.join("\n")); } catch (e) { return; }
  state.sites = payload.sites;
  for (const s of payload.sites) {
    state.latest[s.site] = s;
    if (s.ts_utc) addPoints(s.site, [pointOf(s)]);
  }
  const known = state.site;
  updateSiteList();
  if (state.site && !state.historyLoaded[state.site]) loadHistory(session, state.site);
  if (state.site && state.site !== known) refreshSlow(session);
  render(state.latest[state.site] || null);
  renderAlerts(payload.alerts.filter((a) => a.site === state.site || a.site === null));
}

function updateSiteList() {
  const select = $("site");
  const ids = state.sites.map((s) => s.site);
  if (!state.site || !ids.includes(state.site)) state.site = ids[0] || null;
  const current = Array.from(select.options).map((o) => o.value);
  if (current.join("\n") !== ids.join("\n")) {
    // new Option(text, value) sets the text as text: a site name cannot inject markup.
    select.replaceChildren(...state.sites.map((s) => new Option(s.name ? s.name + " (" + s.site + ")" : s.site, s.site)));
    select.value = state.site || "";
  }
  select.hidden = ids.length < 2;
}

// -- history: the gateway's recent points, then the stream's ----------------------------------

function pointOf(s) {
  return { t: Date.parse(s.ts_utc), soc: s.soc_pct, bat: kwOf(s.battery_power_w), pv: kwOf(s.pv_power_w),
    grid: kwOf(s.grid_power_w), load: kwOf(s.load_power_w), sp: kwOf(s.decision ? s.decision.setpoint_w : null) };
}

function kwOf(w) { return w === null || w === undefined ? null : w / 1000; }

function addPoints(site, points) {
  let h = state.history[site] || [];
  const last = h.length ? h[h.length - 1].t : -Infinity;
  if (points.length === 1 && points[0].t > last) h.push(points[0]);
  else if (points.length === 1 && points[0].t === last) return;
  else {
    const byTime = new Map(h.map((p) => [p.t, p]));
    for (const p of points) byTime.set(p.t, p);
    h = Array.from(byTime.values()).sort((a, b) => a.t - b.t);
  }
  const keepFrom = h[h.length - 1].t - HISTORY_MIN * 60 * 1000;
  let first = 0;
  while (first < h.length && h[first].t < keepFrom) first += 1;
  state.history[site] = first ? h.slice(first) : h;
}

async function loadHistory(session, site) {
  state.historyLoaded[site] = true;
  const sent = Date.now();
  const res = await api("GET", "/sites/" + encodeURIComponent(site) + "/history?minutes=" + HISTORY_MIN);
  if (session !== state.session) return;
  if (res.status !== 200) { state.historyLoaded[site] = false; return; }
  // The gateway's clock when it answered, against ours halfway through the round trip: ages
  // and the chart's time axis then hold even when this computer's clock is off.
  state.skewMs = (sent + Date.now()) / 2 - Date.parse(res.data.now_utc);
  state.resolutionS[site] = res.data.resolution_s;
  addPoints(site, res.data.points.map((p) => pointOf(Object.assign({}, p, { decision: { setpoint_w: p.setpoint_w } }))));
  if (site === state.site) render(state.latest[site] || null);
}

/** Seconds between the site's points: the gateway's word once its history came, else the
 *  median of what the stream brought (5 s, the default cycle, before anything came). */
function cycleS(site) {
  if (state.resolutionS[site]) return state.resolutionS[site];
  const h = state.history[site] || [];
  const gaps = [];
  for (let i = Math.max(1, h.length - 12); i < h.length; i += 1) gaps.push((h[i].t - h[i - 1].t) / 1000);
  if (!gaps.length) return 5;
  gaps.sort((a, b) => a - b);
  return gaps[Math.floor(gaps.length / 2)];
}

const staleAfterS = (site) => Math.max(STALE_FLOOR_S, 3 * cycleS(site));

// -- liveness: is what the page shows the gateway's present? ----------------------------------

/** Seconds since the last record's cycle, plus how old its device data already was then. */
function ageS(s) {
  if (!s || !s.ts_utc) return null;
  // Never below zero: the clock estimate is good to a round trip, not to the millisecond.
  return Math.max(0, (gatewayNow() - Date.parse(s.ts_utc)) / 1000) + (s.data_age_s || 0);
}

function liveness() {
  const s = state.latest[state.site];
  if (!state.streamOpen) return state.unreachableSince === null ? "connecting" : "offline";
  if (!s || !s.ts_utc) return "waiting";  // the site has not finished a cycle yet
  const cycleAgeS = (gatewayNow() - Date.parse(s.ts_utc)) / 1000;
  return cycleAgeS > staleAfterS(state.site) ? "stale" : "live";
}

function setConn(text) {
  const cls = { live: "on", stale: "warn", offline: "off", connecting: "warn", waiting: "warn" }[text] || "none";
  $("conn").textContent = text === "stale" ? "not live" : text;
  $("conn").className = "conn " + cls;
}

/** Badge, banner, greyed values, unknown safety and a counting data age, once per second. */
function showLiveness() {
  if (!state.key) return;
  const z = zone(), now = gatewayNow();
  $("clock").textContent = hms(now, z) + " " + zoneLabel(now, z);
  const live = liveness();
  setConn(live);
  const s = state.latest[state.site];
  const age = ageS(s);
  $("age").textContent = age === null ? "–" : age.toFixed(1) + " s";
  const notLive = live === "offline" || live === "stale";
  $("main").classList.toggle("stale", notLive && !!s);
  $("banner").hidden = !notLive;
  if (live === "offline") {
    const since = hms(state.unreachableSince, z) + " " + zoneLabel(now, z);
    const head = state.refusedWhy ? "No live data since " + since + ": " + state.refusedWhy :
      "Gateway unreachable since " + since;
    const last = s && s.ts_utc ? ". The values below are the last received, from " +
      hms(Date.parse(s.ts_utc), z) + " (" + age.toFixed(0) + " s old), and are not live" : "";
    $("banner").textContent = head + last + ". Retrying every " + RETRY_MS / 1000 + " s.";
  } else if (live === "stale") {
    $("banner").textContent = "No new data from the gateway since " + hms(Date.parse(s.ts_utc), z) + " " +
      zoneLabel(now, z) + " (" + age.toFixed(0) + " s): the values below are not live. Waiting for the gateway.";
  }
  if (notLive && s) {
    $("safety").textContent = "unknown";
    $("safety").className = "badge unknown";
    $("safety-reasons").replaceChildren(li("not live: last known state " + (s.safety ? s.safety.state : "none") +
      " at " + (s.ts_utc ? hms(Date.parse(s.ts_utc), z) : "–")));
  }
  drawCharts();
}

// -- rendering --------------------------------------------------------------------------------

function num(v, digits, unit) { return v === null || v === undefined ? "–" : v.toFixed(digits) + unit; }

/** The site's values; null clears them all. */
function render(s) {
  const z = zone();
  const soc = s ? s.soc_pct : null;
  $("soc").textContent = num(soc, 1, " %");
  $("soc-arc").style.strokeDasharray = (soc === null || soc === undefined ? 0 : 157.1 * soc / 100) + " 200";
  $("capacity").textContent = s ? (s.name ? s.name + " · " : "") + s.capacity_kwh + " kWh" : "";
  $("battery").textContent = kw(s && s.battery_power_w);
  const bat = s ? s.battery_power_w : null, grid = s ? s.grid_power_w : null;
  $("battery-dir").textContent = bat > 0 ? "charging" : bat < 0 ? "discharging" : "";
  $("pv").textContent = kw(s && s.pv_power_w);
  $("grid").textContent = kw(grid);
  $("grid-dir").textContent = grid > 0 ? "importing" : grid < 0 ? "exporting" : "";
  $("load").textContent = kw(s && s.load_power_w);
  $("temp").textContent = num(s && s.battery_temp_c, 1, " °C");
  const safety = s ? (s.safety ? s.safety.state : "starting") : "–";
  $("safety").textContent = safety;
  $("safety").className = "badge " + safety;
  $("mode").textContent = s ? "mode " + s.mode : "–";
  $("safety-reasons").replaceChildren(...(s && s.safety ? s.safety.reasons : []).map((r) => li(r)));
  $("controller").textContent = s && s.controller ? s.controller.name : "–";
  $("controller-reason").textContent = s && s.controller ? s.controller.reason : "";
  $("setpoint").textContent = s && s.decision ? kw(s.decision.setpoint_w) : "–";
  $("decision").textContent = s && s.decision ? s.decision.outcome + ": " + s.decision.reason : "";
  $("override").textContent = s && s.override ? "override " + kw(s.override.setpoint_w) + " until " +
    hms(Date.parse(s.override.until_utc), z) + " " + offsetLabel(Date.parse(s.override.until_utc), z) : "";
  $("cycle").textContent = s && s.cycle !== null ? "#" + s.cycle : "–";
  $("commands-time").textContent = "time (" + z + ")";
  $("schedule-from").textContent = "from (" + z + ")";
  showLiveness();
  if (!s) { $("age").textContent = "–"; drawCharts(); }
}

function drawCharts() {
  const points = state.history[state.site] || [];
  const z = zone(), end = gatewayNow();
  const first = points.length ? points[0].t : end;
  const start = end - Math.min(HISTORY_MIN * 60 * 1000, Math.max(MIN_SPAN_MS, end - first));
  const gapMs = Math.max(3 * cycleS(state.site) * 1000, STALE_FLOOR_S * 1000);
  const common = { zone: z, gapMs };
  drawTimeChart($("chart-soc"), points, start, end, Object.assign({ height: 150, yTitle: "SOC (%)",
    series: [{ key: "soc", cls: "soc" }], fixed: { lo: 0, hi: 100, step: 25 }, yFormat: (v) => v + " %" }, common));
  drawTimeChart($("chart-power"), points, start, end, Object.assign({ height: 200, yTitle: "power (kW)",
    series: [{ key: "pv", cls: "pv" }, { key: "load", cls: "load" }, { key: "grid", cls: "grid" },
      { key: "sp", cls: "sp" }, { key: "bat", cls: "bat" }],
    minSpan: 1, yFormat: (v) => Number(v.toFixed(2)) + " kW" }, common));
  const minutes = Math.round((end - start) / 60000);
  $("history-caption").textContent = points.length ?
    "last " + minutes + " min, times in " + zoneLabel(end, z) + "; battery and setpoint > 0 charge, grid > 0 imports" :
    "no data yet";
}

function renderAlerts(alerts) {
  const list = $("alerts"), z = zone();
  if (!alerts.length) { list.replaceChildren(li("none", "muted")); return; }
  list.replaceChildren(...alerts.map((a) => li(
    a.severity.toUpperCase() + " · " + a.message + (a.count > 1 ? " (×" + a.count + ")" : "") +
    " · since " + hms(Date.parse(a.first_utc), z), a.severity)));
}

// -- slower data: schedule and audit ----------------------------------------------------------

async function refreshSlow(session) {
  if (session !== state.session) return;
  const site = state.site;
  if (site) {
    const [schedule, audit] = await Promise.all([
      api("GET", "/sites/" + encodeURIComponent(site) + "/schedule"),
      api("GET", "/audit?limit=10&site=" + encodeURIComponent(site)),
    ]);
    if (session !== state.session) return;
    if (site === state.site && schedule.status === 200) renderSchedule(schedule.data, zone());
    if (site === state.site && audit.status === 200) renderAudit(audit.data.items);
    await refreshCarbon(api, site, () => session === state.session && site === state.site);
    await refreshVpp(api, site, () => session === state.session && site === state.site);
  }
  clearTimeout(state.slowTimer);
  state.slowTimer = setTimeout(() => refreshSlow(session), site ? SLOW_MS : 500);
}

function renderAudit(items) {
  const z = zone();
  $("commands").tBodies[0].replaceChildren(...items.map((r) => row([
    dateTime(Date.parse(r.ts), z), r.controller + ": " + r.reason, kw(r.requested_w),
    r.outcome, kw(r.setpoint_w), r.guard_reason])));
}

// -- control ----------------------------------------------------------------------------------

function showResult(res, okText) {
  const out = $("control-result");
  if (res.status === 403) {
    out.className = "error";
    out.textContent = "403 Forbidden: this key may only read; overrides and mode changes need a control key. " + detail(res.data);
  } else if (res.status === 401) {
    logout("key no longer valid (401)");
    return;
  } else if (res.status === 409) {
    out.className = "error";
    out.textContent = "blocked by the safety guard, nothing set: " + res.data.reason;
  } else if (res.status === 0) {
    out.className = "error";
    out.textContent = "the gateway does not answer: nothing was changed";
  } else if (res.status >= 400) {
    out.className = "error";
    out.textContent = "error " + res.status + ": " + detail(res.data);
  } else {
    out.className = "ok";
    out.textContent = okText(res.data);
  }
  refreshAuditSoon();
}

function refreshAuditSoon() {
  const session = state.session, site = state.site;
  setTimeout(async () => {
    const audit = await api("GET", "/audit?limit=10&site=" + encodeURIComponent(site));
    if (session === state.session && site === state.site && audit.status === 200) renderAudit(audit.data.items);
  }, 300);
}

function siteUrl(tail) { return "/sites/" + encodeURIComponent(state.site) + tail; }

/** A finite number written plainly ("1500", "-2000.5", "1.5e3"), or null for anything else,
 *  the empty field included (Number("") would be 0: a stop nobody asked for). */
function parseNumber(text) {
  const t = text.trim();
  if (!/^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/.test(t)) return null;
  const n = Number(t);
  return Number.isFinite(n) ? n : null;
}

/** Say in the page why a field was refused; nothing is sent. */
function refuse(id, message) {
  const out = $("control-result");
  out.className = "error";
  out.textContent = message + " Nothing was sent.";
  $(id).setAttribute("aria-invalid", "true");
  $(id).focus();
}

/** The override request from the form, or null after saying in the page what is wrong. */
function overrideBody() {
  for (const id of ["ov-setpoint", "ov-duration"]) $(id).removeAttribute("aria-invalid");
  const setpointText = $("ov-setpoint").value.trim(), durationText = $("ov-duration").value.trim();
  const setpoint = parseNumber(setpointText), duration = parseNumber(durationText);
  if (setpointText === "") {
    refuse("ov-setpoint", "Enter a setpoint in W: > 0 charges, < 0 discharges, 0 stops.");
  } else if (setpoint === null) {
    refuse("ov-setpoint", "The setpoint \"" + setpointText + "\" is not a number of watts.");
  } else if (durationText === "") {
    refuse("ov-duration", "Enter how long the override lasts, in seconds.");
  } else if (duration === null || duration <= 0) {
    refuse("ov-duration", "The duration \"" + durationText + "\" is not a positive number of seconds.");
  } else {
    return { setpoint_w: setpoint, duration_s: duration, reason: $("ov-reason").value };
  }
  return null;
}

function bind() {
  $("login-form").addEventListener("submit", (e) => { e.preventDefault(); login($("key").value.trim()); });
  $("logout").addEventListener("click", () => logout(""));
  $("site").addEventListener("change", (e) => {
    state.site = e.target.value;
    render(state.latest[state.site] || null);
    if (!state.historyLoaded[state.site]) loadHistory(state.session, state.site);
    refreshSlow(state.session);
  });
  $("override-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = overrideBody();
    if (!body) return;
    const res = await api("POST", siteUrl("/override"), body);
    showResult(res, (d) => d.outcome + ": " + kw(d.setpoint_w) + " until " +
      (d.until_utc ? hms(Date.parse(d.until_utc), zone()) + " " + offsetLabel(Date.parse(d.until_utc), zone()) : "–") +
      " (" + d.reason + ")");
  });
  $("ov-clear").addEventListener("click", async () => {
    const res = await api("DELETE", siteUrl("/override"));
    showResult(res, (d) => d.cleared ? "override cleared" : "there was no override");
  });
  for (const button of document.querySelectorAll("[data-mode]")) {
    button.addEventListener("click", async () => {
      const res = await api("POST", siteUrl("/mode"), { mode: button.dataset.mode });
      showResult(res, (d) => "mode " + d.previous + " → " + d.mode);
    });
  }
  setInterval(showLiveness, 1000);
}

bind();
if (state.key) login(state.key);
