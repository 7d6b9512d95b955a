// Compare view: runs given by ?ids=a,b,c or by a query ?q=...; curves overlaid (log-y, smoothing),
// parallel coordinates whose brushing filters the runs table, the config diff, and a scatter.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const params = new URLSearchParams(location.search);
  const ids = (params.get("ids") || "").split(",").filter(Boolean);
  const q = params.get("q");
  const state = { runs: [], visible: [], varied: [], metrics: [], brushes: {}, series: {}, sig: "", gen: 0 };
  EQ.header();

  function metricValue(r, name) { const m = (r.metrics || {})[name]; return m ? (m.best !== undefined ? m.best : m.last) : undefined; }
  function row(r) {
    const flat = EQ.flatten(r.config || {}, "");
    return { id: r.id, rec: r, get: (k) => (k.startsWith("metric:") ? metricValue(r, k.slice(7)) : flat[k]) };
  }
  function variedKeys(rows) {
    const keys = new Set(); rows.forEach((r) => Object.keys(EQ.flatten(r.rec.config || {}, "")).forEach((k) => keys.add(k)));
    return [...keys].filter((k) => new Set(rows.map((r) => JSON.stringify(r.get(k) === undefined ? null : r.get(k)))).size > 1);
  }
  function label(r) {
    const bits = state.varied.slice(0, 3).map((k) => `${k.split(".").pop()}=${EQ.fmt(r.get(k))}`);
    return [r.id.length > 12 ? r.id.slice(-8) : r.id, ...bits].join(" ");
  }
  function options(sel, values, keep) {
    const cur = sel.value;
    sel.replaceChildren(...values.map(([v, t]) => EQ.el("option", { value: v }, t)));
    if (keep && values.some(([v]) => v === cur)) sel.value = cur;
  }

  function renderTable() {
    const cm = $("color-metric").value;
    const head = EQ.el("tr", {}, EQ.el("th", { style: "width:190px" }, "id"), EQ.el("th", { style: "width:100px" }, "status"),
      state.varied.map((k) => EQ.el("th", { style: "width:130px", title: k }, k)), EQ.el("th", { style: "width:120px" }, cm ? cm.slice(7) : ""));
    const keep = new Set(state.visible);
    const body = state.runs.filter((r) => keep.has(r.id)).map((r) => EQ.el("tr", { "data-id": r.id },
      EQ.el("td", { class: "id", title: r.id }, EQ.el("a", { href: "/run/" + encodeURIComponent(r.id) }, EQ.shortId(r.id))),
      EQ.el("td", {}, r.rec.status || ""),
      state.varied.map((k) => { const v = r.get(k); return EQ.el("td", { class: typeof v === "number" ? "num" : null }, EQ.fmt(v)); }),
      EQ.el("td", { class: "num" }, EQ.fmt(cm ? r.get(cm) : ""))));
    $("runs").replaceChildren(EQ.el("thead", {}, head), EQ.el("tbody", {}, body));
    $("runs-summary").textContent = `${body.length} of ${state.runs.length} run(s)`;
  }

  async function renderOverlay(force) {
    const metric = $("metric").value;
    const shown = state.runs.filter((r) => state.visible.includes(r.id)).slice(0, 200);
    if (!metric || !shown.length) { EQ.lineChart($("overlay"), [], {}); return; }
    const gen = ++state.gen;
    const data = await EQ.api("/api/series", { ids: shown.map((r) => r.id).join(","), metric });
    if (gen !== state.gen) return;  // a newer draw (another metric, a brush) was asked for meanwhile
    const sig = JSON.stringify([metric, shown.map((r) => r.id), Object.values(data.runs).map((m) => (m[metric] || { value: [] }).value.length),
      $("xaxis").value, $("logy").checked, $("smooth").value]);
    if (!force && sig === state.sig) return;
    state.sig = sig;
    const x = $("xaxis").value;
    const series = shown.filter((r) => data.runs[r.id] && data.runs[r.id][metric]).map((r, i, all) => {
      const s = data.runs[r.id][metric];
      return { label: label(r), xs: s[x], ys: s.value, color: EQ.colors(i, all.length) };
    });
    EQ.lineChart($("overlay"), series, { title: metric, xLabel: x, logY: $("logy").checked, smooth: +$("smooth").value, height: 340 });
  }

  async function renderDiff() {
    const shown = state.runs.filter((r) => state.visible.includes(r.id)).slice(0, 20);
    if (shown.length < 2) { $("diff").replaceChildren(EQ.el("tbody", {}, EQ.el("tr", {}, EQ.el("td", { class: "muted" }, "pick two runs or more to see what differs")))); return; }
    const data = await EQ.api("/api/diff", { ids: shown.map((r) => r.id).join(",") });
    const head = EQ.el("tr", {}, EQ.el("th", { style: "width:240px" }, "key"), data.ids.map((id) => EQ.el("th", { style: "width:150px", title: id }, EQ.shortId(id))));
    const body = data.rows.map((d) => EQ.el("tr", { "data-key": d.key }, EQ.el("td", { title: d.key }, d.key),
      d.values.map((v) => EQ.el("td", { class: v && v.missing ? "missing" : "differs", title: EQ.fmt(v) }, EQ.fmt(v)))));
    $("diff").replaceChildren(EQ.el("thead", {}, head), EQ.el("tbody", {}, body));
  }

  function renderParcoords() {
    const axes = state.varied.slice(0, 12).filter((k) => state.runs.some((r) => r.get(k) !== undefined));
    const cm = $("color-metric").value;
    EQ.parcoords($("parcoords"), state.runs, cm ? [...axes, cm] : axes, cm, state.brushes, (keep) => {
      const changed = JSON.stringify(keep) !== JSON.stringify(state.visible);
      state.visible = keep;
      if (changed) { renderTable(); renderOverlay(true); renderDiff(); }
    });
  }

  function renderScatter() {
    if (!$("sx").value || !$("sy").value) { $("scatter").replaceChildren(); return; }
    EQ.scatter($("scatter"), state.runs.filter((r) => state.visible.includes(r.id)), $("sx").value, $("sy").value);
  }

  async function load() {
    let records;
    if (ids.length) records = (await EQ.api("/api/runs", { ids: ids.join(",") })).rows;
    else records = (await EQ.api("/api/find", { q: q || "", kind: "run", limit: 500, config: "1" })).rows;
    const before = state.runs.map((r) => r.id).join(",");
    state.runs = records.map(row);
    state.varied = variedKeys(state.runs);
    state.metrics = [...new Set(records.flatMap((r) => Object.keys(r.metrics || {})))].sort();
    if (state.runs.map((r) => r.id).join(",") !== before) state.visible = state.runs.map((r) => r.id);
    $("title").textContent = ids.length ? `Compare ${records.length} run(s)` : `Compare the runs of: ${q || "(everything)"}`;
    const first = state.metrics.includes("val_acc") ? "val_acc" : state.metrics[0];
    options($("metric"), state.metrics.map((m) => [m, m]), true);
    if (!$("metric").dataset.set && first) { $("metric").value = first; $("metric").dataset.set = "1"; }
    options($("color-metric"), state.metrics.map((m) => ["metric:" + m, m]), true);
    if (!$("color-metric").dataset.set && first) { $("color-metric").value = "metric:" + first; $("color-metric").dataset.set = "1"; }
    options($("sx"), [...state.varied, ...state.metrics.map((m) => "metric:" + m)].map((k) => [k, k.replace(/^metric:/, "")]), true);
    options($("sy"), state.metrics.map((m) => ["metric:" + m, m]), true);
    if (!$("sy").dataset.set && first) { $("sy").value = "metric:" + first; $("sy").dataset.set = "1"; }
    renderParcoords(); renderTable(); renderScatter();
    await Promise.all([renderOverlay(true), renderDiff()]);
  }
  for (const id of ["metric", "xaxis", "logy"]) $(id).addEventListener("change", () => renderOverlay(true));
  $("smooth").addEventListener("input", () => { $("smooth-v").textContent = $("smooth").value; renderOverlay(true); });
  $("color-metric").addEventListener("change", () => { renderParcoords(); renderTable(); });
  $("sx").addEventListener("change", renderScatter); $("sy").addEventListener("change", renderScatter);
  $("clear-brush").addEventListener("click", () => { for (const k of Object.keys(state.brushes)) delete state.brushes[k]; renderParcoords(); });
  load().catch((err) => $("error").append(EQ.el("pre", { class: "error" }, err.message)));
  // live: new epochs extend the curves; with ?q=, new runs join
  EQ.poll(async () => {
    if (!ids.length) {
      const data = await EQ.api("/api/find", { q: q || "", kind: "run", limit: 500 });
      if (data.rows.map((r) => r.id).join(",") !== state.runs.map((r) => r.id).join(",")) { await load(); return; }
    }
    await renderOverlay(false);
    $("live").textContent = "live \u2022 " + new Date().toLocaleTimeString();
  }, 2000);
})();
