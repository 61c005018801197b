// Times in a site's own zone, with the zone named: the gateway speaks UTC, people read the
// clock on the wall next to the battery.

const formatters = new Map();

function formatter(zone) {
  let f = formatters.get(zone);
  if (!f) {
    f = new Intl.DateTimeFormat("en-GB", {
      timeZone: zone, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", second: "2-digit",
    });
    formatters.set(zone, f);
  }
  return f;
}

/** The zone if this browser knows it, else "UTC" (the gateway validated it; a browser may lag). */
export function knownZone(zone) {
  if (!zone) return "UTC";
  try { formatter(zone); return zone; } catch (e) { return "UTC"; }
}

/** Wall-clock fields of the instant `ms` in `zone`, as numbers. */
export function wall(ms, zone) {
  const out = {};
  for (const p of formatter(zone).formatToParts(new Date(ms))) {
    if (p.type !== "literal") out[p.type] = Number(p.value);
  }
  return out;
}

const pad = (n) => String(n).padStart(2, "0");

export function hms(ms, zone) {
  const w = wall(ms, zone);
  return pad(w.hour) + ":" + pad(w.minute) + ":" + pad(w.second);
}

export function hm(ms, zone) {
  const w = wall(ms, zone);
  return pad(w.hour) + ":" + pad(w.minute);
}

/** "03-14": the local month and day. */
export function md(ms, zone) {
  const w = wall(ms, zone);
  return pad(w.month) + "-" + pad(w.day);
}

export function dateTime(ms, zone) {
  const w = wall(ms, zone);
  return w.year + "-" + pad(w.month) + "-" + pad(w.day) + " " + hms(ms, zone);
}

/** The zone's offset from UTC at `ms` in minutes (Santiago in summer: -180). */
export function offsetMin(ms, zone) {
  const w = wall(ms, zone);
  const asUtc = Date.UTC(w.year, w.month - 1, w.day, w.hour, w.minute, w.second);
  return Math.round((asUtc - Math.floor(ms / 1000) * 1000) / 60000);
}

/** "UTC-3", "UTC+5:30", "UTC+0". */
export function offsetLabel(ms, zone) {
  const m = offsetMin(ms, zone);
  const a = Math.abs(m);
  return "UTC" + (m < 0 ? "-" : "+") + Math.floor(a / 60) + (a % 60 ? ":" + pad(a % 60) : "");
}

/** "America/Santiago (UTC-3)". */
export function zoneLabel(ms, zone) {
  return zone + " (" + offsetLabel(ms, zone) + ")";
}
