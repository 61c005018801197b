// The carbon card: CO2 avoided by the selected site under each factor method (never summed
// across methods), its embodied share, and the gateway's energy credits. Text only (textContent).
import { $, row } from "./dom.js";

function num(v, digits) { return v === null || v === undefined ? "–" : Number(v).toFixed(digits); }

/** Fetch both routes and render, unless `current()` says the page moved on meanwhile. */
export async function refreshCarbon(api, site, current) {
  const [carbon, credits] = await Promise.all([api("GET", "/carbon"), api("GET", "/credits")]);
  if (!current()) return;
  renderCarbon(carbon.status === 200 ? carbon.data : null,
    credits.status === 200 ? credits.data : null, site);
}

export function renderCarbon(carbon, credits, site) {
  const body = $("carbon-methods").tBodies[0];
  const s = carbon && carbon.enabled ? carbon.sites.find((x) => x.site === site) : null;
  if (!s) {
    body.replaceChildren();
    $("carbon-note").textContent = carbon && !carbon.enabled
      ? "carbon accounting is off ([carbon] enabled = false)" : "no carbon data yet";
  } else {
    body.replaceChildren(...s.methods.map((m) => row([
      m.method, num(m.avoided_kg, 3) + " kg", num(m.discharged_kwh, 2) + " kWh",
      m.factor_g_kwh === null ? "–" : num(m.factor_g_kwh, 0) + " g/kWh"])));
    $("carbon-note").textContent = "since " + carbon.since_utc.slice(0, 19).replace("T", " ") +
      " UTC; embodied share " + num(s.embodied.share_kg, 3) + " kg (" +
      num(s.embodied.kg_per_kwh_discharged, 3) + " kg per kWh delivered)";
  }
  $("credits").textContent = !credits ? "–" : !credits.enabled ? "ledger off ([ledger] enabled)" :
    credits.minted + " credits, " + num(credits.kwh, 3) + " kWh discharged, " +
    num(credits.co2_avoided_kg, 3) + " kg CO2 stated, " + credits.transfers + " transfers" +
    (credits.mint_failures ? "; minting failed " + credits.mint_failures + " times" : "");
}
