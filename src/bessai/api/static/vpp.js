// The grid-events card: the selected site's OpenADR VEN (VTN reachable, events in force, the
// limits they set, flexibility). Text only (textContent).
import { $, row } from "./dom.js";

function num(v, digits) { return v === null || v === undefined ? "–" : Number(v).toFixed(digits); }

/** Fetch /vpp and render, unless `current()` says the page moved on meanwhile. */
export async function refreshVpp(api, site, current) {
  const answer = await api("GET", "/vpp");
  if (!current()) return;
  renderVpp(answer.status === 200 ? answer.data : null, site);
}

export function renderVpp(view, site) {
  const body = $("vpp-events").tBodies[0];
  const s = view ? view.sites.find((x) => x.site_id === site) : null;
  if (!s) {
    body.replaceChildren();
    $("vpp-note").textContent = "no OpenADR VEN on this site ([sites.vpp] enabled = false)";
    return;
  }
  body.replaceChildren(...s.active_events.map((e) => row([
    e.name || e.event_id, e.start.slice(11, 19) + "–" + e.end.slice(11, 19) + " UTC",
    Object.entries(e.payloads).map(([k, v]) => k + " " + v.join(",")).join("; ")])));
  const limits = [];
  if (s.import_max_w !== null) limits.push("import ≤ " + num(s.import_max_w / 1000, 2) + " kW");
  if (s.export_max_w !== null) limits.push("export ≤ " + num(s.export_max_w / 1000, 2) + " kW");
  $("vpp-note").textContent = "VTN " + (s.vtn_up ? "reachable" : "unreachable" +
    (s.last_error ? " (" + s.last_error + ")" : "")) + "; " +
    (s.active_events.length ? s.active_events.length + " event(s) in force" : "no event in force") +
    (limits.length ? "; " + limits.join(", ") : "") + "; flexibility up " + num(s.flex_up_kw, 2) +
    " kW, down " + num(s.flex_down_kw, 2) + " kW; " + s.reports_sent + " reports sent";
}
