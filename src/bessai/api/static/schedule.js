// The optimizer's plan: setpoint bars, the price line it was planned on, the forecast band,
// and the next slots with their reasons, on the site's clock.
import { svgEl } from "./chart.js";
import { $, kw, row } from "./dom.js";
import { hms, zoneLabel } from "./time.js";

/** The plan's bars, price line, band and table; null clears them. */
export function renderSchedule(plan, z) {
  const svg = $("schedule"), table = $("schedule-table");
  const has = !!plan && plan.slots.length > 0;
  $("schedule-empty").hidden = has;
  $("schedule-empty").textContent = plan ? plan.why : "Loading the schedule…";
  svg.toggleAttribute("hidden", !has);  // SVG elements have no .hidden property
  table.hidden = !has;
  $("schedule-caption").textContent = "";
  if (!has) { svg.replaceChildren(); table.tBodies[0].replaceChildren(); return; }
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
    rect.appendChild(svgEl("title", {}, s.reason));
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
  const hhmm = (iso) => hms(Date.parse(iso), z).slice(0, 5);
  const active = Math.max(0, plan.slots.findIndex((s) => s.active));
  table.tBodies[0].replaceChildren(...plan.slots.slice(active, active + 12).map((s) => {
    const tr = row([hhmm(s.start_utc), hhmm(s.end_utc), kw(s.setpoint_w),
      s.price.toFixed(1), s.soc_pct.toFixed(0) + " %", s.reason]);
    if (s.active) tr.className = "active";
    return tr;
  }));
  const unit = plan.price_unit || "price";
  const planned = plan.created_utc ? hhmm(plan.created_utc) : "–";
  const caption = [(plan.following ? "following the plan" : "not following: " + plan.why) +
    " · " + plan.status + ", planned " + planned + " · times " + zoneLabel(start, z)];
  caption.push("bars: setpoint (up = charge, down = discharge); line: price " +
    lo.toFixed(0) + "–" + hi.toFixed(0) + " " + unit);
  if (band) caption.push("band: forecast p10–p90");
  $("schedule-caption").textContent = caption.join(" · ");
}
