// Time-series charts drawn as plain SVG: a y axis with its unit, time ticks on the site's wall
// clock, one path per series, broken where data is missing instead of bridging the gap.
import { hm, hms, md, offsetMin } from "./time.js";

const SVG_NS = "http://www.w3.org/2000/svg";
const MARGIN = { left: 56, right: 14, top: 10, bottom: 24 };
const TIME_STEPS_S = [10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200,
  86400, 172800, 432000, 604800, 1209600, 2592000];
const DAY_S = 86400;
const MAX_TIME_TICKS = 7;

export function svgEl(name, attrs, text) {
  const el = document.createElementNS(SVG_NS, name);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  return el;
}

function niceStep(raw) {
  const p = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= raw) return m * p;
  return 10 * p;
}

/** A y range with round ticks that holds every value and zero (power charts). */
function autoRange(values, minSpan) {
  let lo = 0, hi = 0;
  for (const v of values) { if (v < lo) lo = v; if (v > hi) hi = v; }
  if (hi - lo < minSpan) { hi = Math.max(hi, lo + minSpan / 2); lo = Math.min(lo, hi - minSpan); }
  const step = niceStep((hi - lo) / 4);
  return { lo: Math.floor(lo / step) * step, hi: Math.ceil(hi / step) * step, step };
}

function timeTicks(start, end, zone) {
  const spanS = (end - start) / 1000;
  const stepS = TIME_STEPS_S.find((s) => spanS / s <= MAX_TIME_TICKS) || 2592000;
  const stepMs = stepS * 1000;
  // Round on the site's wall clock, so ticks fall on :00, :05 ... even at a UTC+5:45 site.
  const shift = offsetMin(start, zone) * 60000;
  const ticks = [];
  for (let t = Math.ceil((start + shift) / stepMs) * stepMs - shift; t <= end; t += stepMs) ticks.push(t);
  // Days and longer (the analyst's ranges): the local date; a day of hours: the wall clock.
  const label = (t) => (stepS >= DAY_S ? md(t, zone) : stepS < 60 ? hms(t, zone) : hm(t, zone));
  return { ticks, label };
}

/**
 * Draw `points` ({t: epoch ms, <key>: value or null}) between `start` and `end` (epoch ms).
 * opts: height, series [{key, cls}], yTitle, yFormat, fixed {lo, hi, step} or minSpan, zone,
 * gapMs (a longer pause between points breaks the line).
 */
export function drawTimeChart(svg, points, start, end, opts) {
  const width = Math.max(320, Math.round(svg.getBoundingClientRect().width) || 600);
  const H = opts.height;
  svg.setAttribute("viewBox", "0 0 " + width + " " + H);
  const x0 = MARGIN.left, x1 = width - MARGIN.right, y0 = H - MARGIN.bottom, y1 = MARGIN.top;
  const visible = points.filter((p) => p.t >= start && p.t <= end);
  const values = [];
  for (const p of visible) for (const s of opts.series) if (p[s.key] !== null && p[s.key] !== undefined) values.push(p[s.key]);
  const { lo, hi, step } = opts.fixed || autoRange(values, opts.minSpan || 1);
  const X = (t) => x0 + (t - start) / Math.max(1, end - start) * (x1 - x0);
  const Y = (v) => y0 - (v - lo) / (hi - lo) * (y0 - y1);
  const out = [];
  for (let i = 0, v = lo; v <= hi + step / 1e6; i += 1, v = lo + i * step) {
    const y = Y(v).toFixed(1);
    out.push(svgEl("line", { x1: x0, x2: x1, y1: y, y2: y, class: Math.abs(v) < step / 1e6 ? "zero" : "gridline" }));
    out.push(svgEl("text", { x: x0 - 6, y: Number(y) + 4, "text-anchor": "end", class: "tick" }, opts.yFormat(v)));
  }
  const mid = ((y0 + y1) / 2).toFixed(1);
  out.push(svgEl("text", { x: 12, y: mid, transform: "rotate(-90 12 " + mid + ")", "text-anchor": "middle",
    class: "axis-title" }, opts.yTitle));
  const { ticks, label } = timeTicks(start, end, opts.zone);
  for (const t of ticks) {
    const x = X(t).toFixed(1);
    out.push(svgEl("line", { x1: x, x2: x, y1: y1, y2: y0 + 4, class: "gridline" }));
    // A label centred on a tick near either end would be cut off by the edge.
    const anchor = X(t) > x1 - 28 ? "end" : X(t) < x0 + 28 ? "start" : "middle";
    out.push(svgEl("text", { x, y: H - 6, "text-anchor": anchor, class: "tick time" }, label(t)));
  }
  out.push(svgEl("line", { x1: x0, x2: x1, y1: y0, y2: y0, class: "axis" }));
  out.push(svgEl("line", { x1: x0, x2: x0, y1: y1, y2: y0, class: "axis" }));
  for (const s of opts.series) {
    let d = "", prev = null, n = 0;
    for (const p of visible) {
      const v = p[s.key];
      if (v === null || v === undefined) { prev = null; continue; }
      const joined = prev !== null && p.t - prev.t <= opts.gapMs;
      d += (joined ? "L" : "M") + X(p.t).toFixed(1) + " " + Y(v).toFixed(1) + (joined ? " " : "h0.01 ");
      prev = p;
      n += 1;
    }
    out.push(svgEl("path", { d: d || "M0 0", class: "series s-" + s.cls, "data-points": n }));
  }
  svg.replaceChildren(...out);
  svg.setAttribute("data-points", visible.length);
  return { X, Y, x0, x1, y0, y1 };
}
