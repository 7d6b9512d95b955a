// Line charts on uPlot (vendored; picked on measured frame times, see docs/ui.md): one chart per
// metric, runs overlaid, x = epoch or step, optional log-y and EMA smoothing.
"use strict";
EQ.smooth = function (ys, alpha) {
  if (!alpha) return ys;
  let acc = null, n = 0;
  return ys.map((y) => { if (y === null || y === undefined) return null; n++;
    acc = acc === null ? y : alpha * acc + (1 - alpha) * y;
    return acc / 1; });
};
// series: [{label, xs, ys, color}] -> a uPlot chart in container; container.dataset gets
// "series" (how many lines) and "points" (points per line, comma-separated) for tests and scripts.
EQ.lineChart = function (container, series, opts) {
  opts = opts || {};
  if (container._plot) { container._plot.destroy(); container._plot = null; }
  container.replaceChildren();
  const xset = new Set();
  series.forEach((s) => s.xs.forEach((x) => { if (x !== null && x !== undefined) xset.add(x); }));
  const xs = [...xset].sort((a, b) => a - b);
  const idx = new Map(xs.map((x, i) => [x, i]));
  const data = [xs];
  const points = [];
  series.forEach((s) => {
    const ys = new Array(xs.length).fill(null);
    let n = 0;
    const sm = EQ.smooth(s.ys, opts.smooth || 0);
    s.xs.forEach((x, i) => { if (idx.has(x)) { let y = sm[i]; if (opts.logY && !(y > 0)) y = null; ys[idx.get(x)] = y; if (y !== null) n++; } });
    data.push(ys); points.push(n);
  });
  container.dataset.series = String(series.length);
  container.dataset.points = points.join(",");
  if (!xs.length) { container.append(EQ.el("div", { class: "muted" }, "no points")); return null; }
  const width = opts.width || Math.max(320, Math.min(container.clientWidth || 900, 1100));
  const u = new uPlot({
    title: opts.title, width, height: opts.height || 300,
    scales: { x: { time: false }, y: { distr: opts.logY ? 3 : 1 } },
    axes: [{ label: opts.xLabel || "epoch", incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 1e4, 2e4, 5e4, 1e5, 1e6] }, { size: 60 }],
    cursor: { drag: { x: true, y: false, setScale: true } },
    legend: { show: series.length <= 12, live: true },
    series: [{ label: opts.xLabel || "epoch" }].concat(series.map((s, i) => ({
      label: s.label, stroke: s.color || EQ.colors(i, series.length), width: 1.5, spanGaps: true,
      points: { show: xs.length <= 60, size: 4 } }))),
  }, data, container);
  container._plot = u;
  return u;
};
