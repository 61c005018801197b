// Small page helpers. Text always goes in as text (textContent), never as markup.

export const $ = (id) => document.getElementById(id);

export function kw(w) { return w === null || w === undefined ? "–" : (w / 1000).toFixed(2) + " kW"; }

export function li(text, cls) {
  const item = document.createElement("li");
  item.textContent = text;
  if (cls) item.className = cls;
  return item;
}

export function row(cells) {
  const tr = document.createElement("tr");
  for (const c of cells) { const td = document.createElement("td"); td.textContent = c; tr.appendChild(td); }
  return tr;
}
