// open-bess-edge dashboard: plain JavaScript, no build step, nothing loaded from elsewhere.
// The API key lives in sessionStorage (this tab only) and travels in the Authorization header;
// the live stream is read with fetch() because EventSource cannot send headers.
"use strict";

const KEY_STORE = "bessai.key";
const HISTORY_S = 600;
const SVG_NS = "http://www.w3.org/2000/svg";
const $ = (id) => document.getElementById(id);

const state = {
  key: sessionStorage.getItem(KEY_STORE),
  site: null,
  sites: [],
  history: {},
  stream: null,
};

function headers(extra) {
  return Object.assign({ Authorization: "Bearer " + state.key }, extra || {});
}

async function api(method, path, body) {
  const init = { method, headers: headers(body ? { "Content-Type": "application/json" } : {}) };
  if (body) init.body = JSON.stringify(body);
  const response = await fetch("/api/v1" + path, init);
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

// -- login ------------------------------------------------------------------------------------

async function login(key) {
  state.key = key;
  const me = await api("GET", "/me");
  if (me.status !== 200) {
    state.key = null;
    sessionStorage.removeItem(KEY_STORE);
    const why = me.status === 401 ? "key not recognized (401)" :
      me.status === 429 ? "too many failed attempts; wait and retry (429)" :
      "login failed (" + me.status + ")";
    $("login-error").textContent = why + (detail(me.data) ? ": " + detail(me.data) : "");
    return false;
  }
  sessionStorage.setItem(KEY_STORE, key);
  $("who").textContent = me.data.name + " (" + me.data.role + ")";
  $("login").hidden = true;
  $("main").hidden = false;
  $("logout").hidden = false;
  startStream();
  refreshSlow();
  return true;
}

function logout(message) {
  sessionStorage.removeItem(KEY_STORE);
  state.key = null;
  if (state.stream) state.stream.abort();
  $("main").hidden = true;
  $("login").hidden = false;
  $("logout").hidden = true;
  $("who").textContent = "";
  $("login-error").textContent = message || "";
}

// -- live stream (server-sent events over fetch) ----------------------------------------------

async function startStream() {
  if (state.stream) state.stream.abort();
  const controller = new AbortController();
  state.stream = controller;
  while (state.key && !controller.signal.aborted) {
    try {
      const response = await fetch("/api/v1/events", { headers: headers(), signal: controller.signal });
      if (response.status === 401) { logout("key no longer valid (401)"); return; }
      if (!response.ok) throw new Error("stream " + response.status);
      setConn(true);
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
          handleEvent(block);
        }
      }
    } catch (e) {
      if (controller.signal.aborted) return;
    }
    setConn(false);
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
}

function setConn(on) {
  $("conn").textContent = on ? "live" : "offline";
  $("conn").className = "conn " + (on ? "on" : "off");
}

function handleEvent(block) {
  let name = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (line.startsWith("event:")) name = line.slice(6).trim();
    else if (line.startsWith("data:")) data.push(line.slice(5).trim());
  }
  if (name !== "status" || !data.length) return;
  const payload = JSON.parse(data.join("\n"));
  state.sites = payload.sites;
  updateSiteList();
  const now = Date.now() / 1000;
  for (const s of payload.sites) record(s, now);
  const site = payload.sites.find((s) => s.site === state.site);
  if (site) render(site);
  renderAlerts(payload.alerts.filter((a) => a.site === state.site || a.site === null));
}

function updateSiteList() {
  const select = $("site");
  const ids = state.sites.map((s) => s.site);
  if (!state.site || !ids.includes(state.site)) state.site = ids[0] || null;
  if (select.options.length !== ids.length) {
    select.replaceChildren(...ids.map((id) => new Option(id, id)));
    select.value = state.site;
  }
  select.hidden = ids.length < 2;
}

// -- rendering --------------------------------------------------------------------------------

function kw(w) { return w === null || w === undefined ? "–" : (w / 1000).toFixed(2) + " kW"; }

function render(s) {
  const soc = s.soc_pct;
  $("soc").textContent = soc === null ? "–" : soc.toFixed(1) + " %";
  $("soc-arc").style.strokeDasharray = (soc === null ? 0 : 157.1 * soc / 100) + " 200";
  $("capacity").textContent = (s.name ? s.name + " · " : "") + s.capacity_kwh + " kWh";
  $("battery").textContent = kw(s.battery_power_w);
  $("battery-dir").textContent = s.battery_power_w > 0 ? "charging" : s.battery_power_w < 0 ? "discharging" : "";
  $("pv").textContent = kw(s.pv_power_w);
  $("grid").textContent = kw(s.grid_power_w);
  $("grid-dir").textContent = s.grid_power_w > 0 ? "importing" : s.grid_power_w < 0 ? "exporting" : "";
  $("load").textContent = kw(s.load_power_w);
  $("temp").textContent = s.battery_temp_c === null ? "–" : s.battery_temp_c.toFixed(1) + " °C";
  const safety = s.safety ? s.safety.state : "starting";
  $("safety").textContent = safety;
  $("safety").className = "badge " + safety;
  $("mode").textContent = "mode " + s.mode;
  $("safety-reasons").replaceChildren(...(s.safety ? s.safety.reasons : []).map((r) => li(r)));
  $("controller").textContent = s.controller ? s.controller.name : "–";
  $("controller-reason").textContent = s.controller ? s.controller.reason : "";
  $("setpoint").textContent = s.decision ? kw(s.decision.setpoint_w) : "–";
  $("decision").textContent = s.decision ? s.decision.outcome + ": " + s.decision.reason : "";
  $("override").textContent = s.override ?
    "override " + kw(s.override.setpoint_w) + " until " + s.override.until_utc.slice(11, 19) + " UTC" : "";
  $("cycle").textContent = s.cycle === null ? "–" : "#" + s.cycle;
  $("age").textContent = s.data_age_s === null ? "–" : s.data_age_s.toFixed(1) + " s";
  drawHistory(state.history[s.site] || []);
}

function li(text, cls) {
  const item = document.createElement("li");
  item.textContent = text;
  if (cls) item.className = cls;
  return item;
}

function record(s, now) {
  const h = state.history[s.site] || (state.history[s.site] = []);
  h.push({ t: now, soc: s.soc_pct, bat: s.battery_power_w, pv: s.pv_power_w, grid: s.grid_power_w });
  while (h.length && h[0].t < now - HISTORY_S) h.shift();
}

function svgEl(name, attrs) {
  const el = document.createElementNS(SVG_NS, name);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  return el;
}

function drawHistory(points) {
  const svg = $("history");
  const W = 600, H = 160;
  const now = Date.now() / 1000;
  // The axis grows with the data, from one minute up to HISTORY_S, so a fresh page is readable.
  const span = Math.min(HISTORY_S, Math.max(60, points.length ? now - points[0].t : 60));
  const x = (t) => W - (now - t) / span * W;
  const maxW = Math.max(1000, ...points.flatMap((p) => [p.bat, p.pv, p.grid].map((v) => Math.abs(v || 0))));
  const yPower = (w) => H / 2 - (w / maxW) * (H / 2 - 6);
  const ySoc = (soc) => H - 4 - soc / 100 * (H - 8);
  const line = (get, y, cls) => {
    const pts = points.filter((p) => get(p) !== null && get(p) !== undefined)
      .map((p) => x(p.t).toFixed(1) + "," + y(get(p)).toFixed(1)).join(" ");
    return svgEl("polyline", { points: pts, class: cls, fill: "none" });
  };
  svg.replaceChildren(
    svgEl("line", { x1: 0, x2: W, y1: H / 2, y2: H / 2, stroke: "#cbd5e0", "stroke-dasharray": "4 4" }),
    line((p) => p.pv, yPower, "pv"),
    line((p) => p.grid, yPower, "grid"),
    line((p) => p.bat, yPower, "bat"),
    line((p) => p.soc, ySoc, "soc"),
  );
  for (const [cls, color] of [["soc", "#2b6cb0"], ["bat", "#805ad5"], ["pv", "#d69e2e"], ["grid", "#4a5568"]]) {
    for (const el of svg.getElementsByClassName(cls)) { el.setAttribute("stroke", color); el.setAttribute("stroke-width", "2"); }
  }
}

function renderAlerts(alerts) {
  const list = $("alerts");
  if (!alerts.length) { list.replaceChildren(li("none", "muted")); return; }
  list.replaceChildren(...alerts.map((a) => li(
    a.severity.toUpperCase() + " · " + a.message + (a.count > 1 ? " (×" + a.count + ")" : "") +
    " · since " + a.first_utc.slice(11, 19), a.severity)));
}

// -- slower data: schedule and audit ----------------------------------------------------------

async function refreshSlow() {
  if (!state.key || !state.site) { setTimeout(refreshSlow, 1000); return; }
  const [schedule, audit] = await Promise.all([
    api("GET", "/sites/" + encodeURIComponent(state.site) + "/schedule"),
    api("GET", "/audit?limit=10&site=" + encodeURIComponent(state.site)),
  ]);
  if (schedule.status === 200) renderSchedule(schedule.data);
  if (audit.status === 200) renderAudit(audit.data.items);
  setTimeout(refreshSlow, 5000);
}

function renderSchedule(plan) {
  const svg = $("schedule"), table = $("schedule-table");
  const has = plan.slots.length > 0;
  $("schedule-empty").hidden = has;
  $("schedule-empty").textContent = plan.why;
  svg.toggleAttribute("hidden", !has);  // SVG elements have no .hidden property
  table.hidden = !has;
  $("schedule-caption").textContent = "";
  if (!has) return;
  const start = Date.parse(plan.slots[0].start_utc), end = Date.parse(plan.slots[plan.slots.length - 1].end_utc);
  const W = 600, H = 140, span = Math.max(1, end - start);
  const x = (t) => (Date.parse(t) - start) / span * W;
  const maxW = Math.max(1000, ...plan.slots.map((s) => Math.abs(s.setpoint_w)));
  const children = [svgEl("line", { x1: 0, x2: W, y1: H / 2, y2: H / 2, stroke: "#cbd5e0" })];
  // Prices on their own scale behind the bars: the band p10-p90 when the forecast has one,
  // and always the price each slot was planned on.
  const band = plan.forecast && plan.forecast.length ? plan.forecast : null;
  const values = plan.slots.map((s) => s.price).concat(band ? band.flatMap((f) => [f.p10, f.p90]) : []);
  const lo = Math.min(...values), hi = Math.max(...values);
  const y = (v) => H - 4 - (v - lo) / Math.max(1e-9, hi - lo) * (H - 8);
  const mid = (s) => (x(s.start_utc) + x(s.end_utc || s.start_utc)) / 2;
  for (const s of plan.slots) {
    const h = Math.abs(s.setpoint_w) / maxW * (H / 2 - 4);
    const rect = svgEl("rect", { x: x(s.start_utc), width: Math.max(1, x(s.end_utc) - x(s.start_utc) - 1),
      y: s.setpoint_w > 0 ? H / 2 - h : H / 2, height: h, fill: s.setpoint_w > 0 ? "#38a169" : "#dd6b20",
      opacity: s.active ? "1" : "0.6" });
    const title = svgEl("title", {});
    title.textContent = s.reason;
    rect.appendChild(title);
    children.push(rect);
  }
  if (band) {
    const upper = band.map((f) => x(f.start_utc) + "," + y(f.p90));
    const lower = band.slice().reverse().map((f) => x(f.start_utc) + "," + y(f.p10));
    children.push(svgEl("polygon", { points: upper.concat(lower).join(" "), fill: "#bee3f8", opacity: "0.6" }));
  }
  children.push(svgEl("polyline", { points: plan.slots.map((s) => mid(s) + "," + y(s.price)).join(" "),
    fill: "none", stroke: "#3182ce", "stroke-width": "1.5", class: "price" }));
  svg.replaceChildren(...children);
  const active = Math.max(0, plan.slots.findIndex((s) => s.active));
  table.tBodies[0].replaceChildren(...plan.slots.slice(active, active + 12).map((s) => {
    const tr = row([s.start_utc.slice(11, 16), s.end_utc.slice(11, 16), kw(s.setpoint_w),
      s.price.toFixed(1), s.soc_pct.toFixed(0) + " %", s.reason]);
    if (s.active) tr.className = "active";
    return tr;
  }));
  const unit = plan.price_unit || "price";
  const caption = [(plan.following ? "following the plan" : "not following: " + plan.why) +
    " · " + plan.status + ", planned " + (plan.created_utc || "").slice(11, 16) + " UTC"];
  caption.push("bars: setpoint (up = charge, down = discharge), UTC; line: price " +
    lo.toFixed(0) + "–" + hi.toFixed(0) + " " + unit);
  if (band) caption.push("band: forecast p10–p90");
  $("schedule-caption").textContent = caption.join(" · ");
}

function row(cells) {
  const tr = document.createElement("tr");
  for (const c of cells) { const td = document.createElement("td"); td.textContent = c; tr.appendChild(td); }
  return tr;
}

function renderAudit(items) {
  $("commands").tBodies[0].replaceChildren(...items.map((r) => row([
    r.ts.slice(0, 19).replace("T", " "), r.controller + ": " + r.reason, kw(r.requested_w),
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
  } else if (res.status === 409) {
    out.className = "error";
    out.textContent = "blocked by the safety guard, nothing set: " + res.data.reason;
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
  setTimeout(async () => {
    const audit = await api("GET", "/audit?limit=10&site=" + encodeURIComponent(state.site));
    if (audit.status === 200) renderAudit(audit.data.items);
  }, 300);
}

function siteUrl(tail) { return "/sites/" + encodeURIComponent(state.site) + tail; }

function bind() {
  $("login-form").addEventListener("submit", (e) => { e.preventDefault(); login($("key").value.trim()); });
  $("logout").addEventListener("click", () => logout(""));
  $("site").addEventListener("change", (e) => {
    state.site = e.target.value;
    const site = state.sites.find((s) => s.site === state.site);
    if (site) render(site);
    refreshAuditSoon();
  });
  $("override-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = { setpoint_w: Number($("ov-setpoint").value), duration_s: Number($("ov-duration").value),
      reason: $("ov-reason").value };
    const res = await api("POST", siteUrl("/override"), body);
    showResult(res, (d) => d.outcome + ": " + kw(d.setpoint_w) + " until " +
      (d.until_utc || "").slice(11, 19) + " UTC (" + d.reason + ")");
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
}

bind();
if (state.key) login(state.key);
