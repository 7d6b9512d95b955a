// Parallel coordinates (SVG) and scatter plots, drawn by hand: one axis per varied param plus a
// metric; dragging along an axis brushes a range, and onFilter gets the ids still inside every brush.
"use strict";
const SVGNS = "http://www.w3.org/2000/svg";
EQ.svg = function (tag, attrs, text) {
  const n = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined && v !== null) n.setAttribute(k, String(v));
  if (text !== undefined) n.textContent = text;
  return n;
};
// an axis scale over values: numeric (log when positive and spanning 2+ decades) or categorical
EQ.scale = function (values, lo, hi) {
  const present = values.filter((v) => v !== undefined && v !== null);
  const nums = present.every((v) => typeof v === "number");
  if (nums && present.length) {
    let min = Math.min(...present), max = Math.max(...present);
    const log = min > 0 && max / min >= 100;
    const f = log ? Math.log10 : (x) => x;
    if (min === max) { min -= 1; max += 1; }
    const a = f(min), b = f(max);
    const pos = (v) => (typeof v === "number" ? hi - ((f(v) - a) / (b - a)) * (hi - lo) : null);
    const ticks = log ? [...new Set(present)].sort((x, y) => x - y).slice(0, 8) : [min, (min + max) / 2, max];
    return { pos, ticks, numeric: true };
  }
  const cats = [...new Set(present.map((v) => EQ.fmt(v)))].sort();
  const step = cats.length > 1 ? (hi - lo) / (cats.length - 1) : 0;
  const at = new Map(cats.map((c, i) => [c, cats.length > 1 ? hi - i * step : (lo + hi) / 2]));
  return { pos: (v) => (v === undefined || v === null ? null : at.get(EQ.fmt(v))), ticks: cats, numeric: false };
};
EQ.heat = function (t) { // 0..1 -> blue..red
  if (t === null || t === undefined || Number.isNaN(t)) return "#98a2b3";
  return `hsl(${Math.round(240 - 240 * Math.max(0, Math.min(1, t)))}, 75%, 45%)`;
};
EQ.axisName = (k) => { k = k.replace(/^metric:/, ""); return k.length > 28 ? "\u2026" + k.slice(-27) : k; };
// rows: [{id, get(key)}]; axes: [keys]; colorKey: a key; brushes: {key: [y0, y1]} kept by the caller
EQ.parcoords = function (container, rows, axes, colorKey, brushes, onFilter) {
  const W = Math.max(600, Math.min((container.clientWidth || 1000) - 4, 1300)), H = 320, top = 30, bottom = H - 30;
  const left = 60, right = W - 60;
  if (!axes.length) { container.replaceChildren(EQ.el("div", { class: "muted" }, "no param varies between these runs")); onFilter(rows.map((r) => r.id)); return; }
  const svg = EQ.svg("svg", { width: W, height: H, id: "pc-svg" });
  container.replaceChildren(svg);
  const gap = axes.length > 1 ? (right - left) / (axes.length - 1) : 0;
  const scales = axes.map((k) => EQ.scale(rows.map((r) => r.get(k)), top, bottom));
  const cvals = rows.map((r) => r.get(colorKey)).filter((v) => typeof v === "number");
  const cmin = Math.min(...cvals), cmax = Math.max(...cvals);
  const lines = EQ.svg("g", { class: "lines" });
  svg.append(lines);
  const paths = rows.map((r) => {
    const pts = axes.map((k, i) => { const y = scales[i].pos(r.get(k)); return y === null ? null : [left + i * gap, y]; });
    const d = pts.filter(Boolean).map((p, i) => (i ? "L" : "M") + p[0].toFixed(1) + "," + p[1].toFixed(1)).join("");
    const c = r.get(colorKey);
    const p = EQ.svg("path", { d, fill: "none", stroke: EQ.heat(typeof c === "number" && cmax > cmin ? (c - cmin) / (cmax - cmin) : 0.5),
      "stroke-width": 1.5, "stroke-opacity": 0.85, "data-id": r.id });
    p.append(EQ.svg("title", {}, r.id));
    lines.append(p);
    return { r, p, ys: pts.map((q) => (q ? q[1] : null)) };
  });
  function apply() {
    const keep = [];
    for (const { r, p, ys } of paths) {
      const inside = axes.every((k, i) => { const b = brushes[k]; if (!b) return true; const y = ys[i];
        return y !== null && y >= Math.min(b[0], b[1]) - 0.5 && y <= Math.max(b[0], b[1]) + 0.5; });
      p.setAttribute("stroke-opacity", inside ? 0.85 : 0.08);
      if (inside) keep.push(r.id);
    }
    svg.querySelectorAll("rect.brush").forEach((rect) => {
      const b = brushes[rect.dataset.key];
      if (b) { rect.setAttribute("y", Math.min(b[0], b[1])); rect.setAttribute("height", Math.max(1, Math.abs(b[1] - b[0]))); rect.removeAttribute("visibility"); }
      else rect.setAttribute("visibility", "hidden");
    });
    onFilter(keep);
  }
  axes.forEach((k, i) => {
    const x = left + i * gap, sc = scales[i];
    const g = EQ.svg("g", { class: "axis", "data-key": k, transform: `translate(${x},0)` });
    g.append(EQ.svg("line", { x1: 0, x2: 0, y1: top, y2: bottom }));
    g.append(EQ.svg("text", { x: 0, y: top - 12, "text-anchor": "middle", "font-weight": 600 }, EQ.axisName(k)));
    for (const t of sc.ticks) {
      const y = sc.pos(sc.numeric ? t : t);
      if (y === null || y === undefined) continue;
      g.append(EQ.svg("line", { x1: -4, x2: 0, y1: y, y2: y }));
      const label = EQ.svg("text", { x: -6, y: y + 4, "text-anchor": "end" }, sc.numeric ? EQ.fmt(t) : EQ.clip(t, 16));
      label.append(EQ.svg("title", {}, sc.numeric ? EQ.fmt(t) : t));
      g.append(label);
    }
    g.append(EQ.svg("rect", { class: "brush", "data-key": k, x: -8, width: 16, y: top, height: 0, visibility: "hidden" }));
    const hit = EQ.svg("rect", { class: "hit", "data-key": k, x: -12, width: 24, y: top - 4, height: bottom - top + 8, fill: "transparent", style: "cursor:crosshair" });
    hit.addEventListener("mousedown", (ev) => {
      ev.preventDefault();
      const box = svg.getBoundingClientRect();
      const y0 = ev.clientY - box.top;
      brushes[k] = [y0, y0];
      const move = (e) => { brushes[k] = [y0, Math.max(top, Math.min(bottom, e.clientY - box.top))]; apply(); };
      const up = () => { document.removeEventListener("mousemove", move); document.removeEventListener("mouseup", up);
        if (Math.abs(brushes[k][1] - brushes[k][0]) < 3) delete brushes[k]; apply(); };
      document.addEventListener("mousemove", move); document.addEventListener("mouseup", up);
    });
    hit.addEventListener("dblclick", () => { delete brushes[k]; apply(); });
    g.append(hit);
    svg.append(g);
  });
  apply();
};
// scatter of rows' xKey against yKey (SVG)
EQ.scatter = function (container, rows, xKey, yKey) {
  const W = 620, H = 360, l = 70, r = W - 20, t = 20, b = H - 40;
  const svg = EQ.svg("svg", { width: W, height: H, id: "scatter-svg" });
  container.replaceChildren(svg);
  const pts = rows.map((row) => ({ id: row.id, x: row.get(xKey), y: row.get(yKey) })).filter((p) => p.x !== undefined && p.x !== null && typeof p.y === "number");
  const sx = EQ.scale(pts.map((p) => p.x), l, r), sy = EQ.scale(pts.map((p) => p.y), t, b);
  const xpos = (v) => l + r - sx.pos(v); // scale() maps high values to lo; flip for x
  svg.append(EQ.svg("line", { x1: l, x2: r, y1: b, y2: b, stroke: "#98a2b3" }), EQ.svg("line", { x1: l, x2: l, y1: t, y2: b, stroke: "#98a2b3" }));
  svg.append(EQ.svg("text", { x: (l + r) / 2, y: H - 6, "text-anchor": "middle", "font-weight": 600 }, EQ.axisName(xKey)));
  svg.append(EQ.svg("text", { x: 14, y: (t + b) / 2, "text-anchor": "middle", "font-weight": 600, transform: `rotate(-90 14 ${(t + b) / 2})` }, EQ.axisName(yKey)));
  for (const tk of sx.ticks) { const x = xpos(tk); if (x === null || Number.isNaN(x)) continue;
    svg.append(EQ.svg("text", { x, y: b + 16, "text-anchor": "middle" }, EQ.fmt(tk))); }
  for (const tk of sy.ticks) { const y = sy.pos(tk); if (y === null) continue;
    svg.append(EQ.svg("text", { x: l - 6, y: y + 4, "text-anchor": "end" }, EQ.fmt(tk))); }
  pts.forEach((p, i) => { const c = EQ.svg("circle", { cx: xpos(p.x), cy: sy.pos(p.y), r: 5, fill: EQ.colors(i, pts.length), "fill-opacity": 0.8, "data-id": p.id });
    c.append(EQ.svg("title", {}, `${p.id}\n${xKey}=${EQ.fmt(p.x)}\n${yKey}=${EQ.fmt(p.y)}`)); svg.append(c); });
  container.dataset.points = String(pts.length);
};
