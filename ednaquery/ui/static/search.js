// Search page: query box with key autocomplete, caret on syntax errors, results table (chosen,
// sortable, resizable columns; picked runs), live refresh every 2 s.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const params = new URLSearchParams(location.search);
  const state = {
    q: params.get("q") || "", kind: params.get("kind") || "", limit: params.get("limit") || "50",
    sort: params.get("sort") || "", cols: (params.get("cols") || "").split(",").filter(Boolean),
    widths: JSON.parse(localStorage.eqWidths || "{}"), picked: new Set((localStorage.eqPicked || "").split(",").filter(Boolean)),
    last: null, signature: "", gen: 0, hidden: new Set(JSON.parse(localStorage.eqHidden || "[]")),
  };
  EQ.header();
  $("q").value = state.q; $("kind").value = state.kind; $("limit").value = state.limit; $("columns").value = state.cols.join(", ");

  function savePicked() {
    localStorage.eqPicked = [...state.picked].join(",");
    $("compare-picked").textContent = `Compare picked (${state.picked.size})`;
    $("compare-picked").disabled = state.picked.size < 1;
  }

  function showError(err) {
    const box = $("error");
    box.replaceChildren();
    if (!err) return;
    const b = err.body || {};
    if (b.query !== undefined && b.position !== undefined) {
      const caret = " ".repeat(b.position) + "^".repeat(Math.max(1, Math.min(b.length || 1, Math.max(1, b.query.length - b.position))));
      box.append(EQ.el("pre", { class: "error", id: "syntax-error" }, `${b.query}\n${caret}\n${b.error}`));
    } else box.append(EQ.el("pre", { class: "error" }, String(err.message)));
  }

  function cellValue(row, col) {
    if (row.values && col in row.values) return row.values[col];
    const named = row.values && Object.keys(row.values).find((k) => k.endsWith("." + col));
    if (named) return row.values[named];
    const m = /^(?:metrics\.)?([^.]+)\.(last|best)$/.exec(col);
    if (m && row.metrics && row.metrics[m[1]]) return row.metrics[m[1]][m[2]];
    if (row._flat === undefined) row._flat = EQ.flatten(row.config || {}, "");
    if (col in row._flat) return row._flat[col];
    const hit = Object.keys(row._flat).find((k) => k.endsWith("." + col));
    return hit ? row._flat[hit] : undefined;
  }

  function header(label, sortKey) {
    const th = EQ.el("th", { "data-col": label, title: sortKey ? `sort by ${sortKey}` : label }, label);
    const cur = state.sort.replace(/^-/, "");
    if (sortKey && cur === sortKey) th.append(state.sort.startsWith("-") ? " \u25BC" : " \u25B2");
    const width = state.widths[label] || { path: 470, id: 175 }[label];
    if (width) th.style.width = width + "px";
    const grip = EQ.el("span", { class: "grip" });
    grip.addEventListener("mousedown", (ev) => {
      ev.preventDefault(); ev.stopPropagation();
      const x0 = ev.clientX, w0 = th.offsetWidth;
      const move = (e) => { th.style.width = Math.max(40, w0 + e.clientX - x0) + "px"; };
      const up = () => { document.removeEventListener("mousemove", move); document.removeEventListener("mouseup", up);
        state.widths[label] = th.offsetWidth; localStorage.eqWidths = JSON.stringify(state.widths); state.resizedAt = Date.now(); };
      document.addEventListener("mousemove", move); document.addEventListener("mouseup", up);
    });
    th.append(grip);
    grip.addEventListener("click", (e) => e.stopPropagation());
    if (sortKey) th.addEventListener("click", () => {
      if (Date.now() - (state.resizedAt || 0) < 300) return;  // the end of a resize is not a sort
      state.sort = state.sort === sortKey ? "-" + sortKey : sortKey;
      search(true);
    });
    return th;
  }

  function render(data) {
    const table = $("results");
    const builtin = ["kind", "status", "tags"].filter((c) => !state.hidden.has(c));  // shown once, as built-ins
    const valueCols = [...data.columns, ...state.cols.filter((c) => !data.columns.includes(c))]
      .filter((c) => !builtin.includes(c));
    const shown = (name) => !state.hidden.has(name);
    const head = EQ.el("tr", {}, EQ.el("th", { style: "width:34px" }, ""), header("id"),
      shown("kind") ? header("kind", "kind") : null, shown("status") ? header("status", "status") : null,
      shown("path") ? header("path") : null, shown("tags") ? header("tags", "tags") : null, valueCols.map((c) => header(c, c.replace(/^metrics\./, ""))));
    const body = data.rows.map((r) => {
      const box = EQ.el("input", { type: "checkbox", class: "pick", "data-id": r.id });
      box.checked = state.picked.has(r.id);
      box.addEventListener("change", () => { box.checked ? state.picked.add(r.id) : state.picked.delete(r.id);
        tr.classList.toggle("picked", box.checked); savePicked(); });
      const tr = EQ.el("tr", { "data-id": r.id, class: box.checked ? "picked" : null },
        EQ.el("td", {}, box),
        EQ.el("td", { class: "id", title: r.id }, EQ.el("a", { href: "/run/" + encodeURIComponent(r.id) }, EQ.shortId(r.id))),
        shown("kind") ? EQ.el("td", {}, r.kind || "") : null, shown("status") ? EQ.el("td", {}, r.status || "") : null,
        shown("path") ? EQ.el("td", { title: (r.paths || []).join("\n") }, EQ.middle(EQ.path(r), 56)) : null,
        shown("tags") ? EQ.el("td", { title: r.note || "" }, (r.tags || []).map((t) => EQ.el("span", { class: "tag" }, t))) : null,
        valueCols.map((c) => { const v = cellValue(r, c);
          return EQ.el("td", { class: typeof v === "number" ? "num" : null, title: EQ.fmt(v) }, EQ.fmt(v)); }));
      return tr;
    });
    table.replaceChildren(EQ.el("thead", {}, head), EQ.el("tbody", {}, body));
    $("summary").textContent = `${data.rows.length} row(s)` + (data.rows.length >= data.limit ? ` (limit ${data.limit})` : "");
  }

  async function search(push) {
    state.q = $("q").value.trim(); state.kind = $("kind").value; state.limit = $("limit").value.trim() || "50";
    state.cols = $("columns").value.split(",").map((s) => s.trim()).filter(Boolean);
    if (push) {
      const p = new URLSearchParams();
      for (const [k, v] of [["q", state.q], ["kind", state.kind], ["limit", state.limit], ["sort", state.sort], ["cols", state.cols.join(",")]])
        if (v && !(k === "limit" && v === "50")) p.set(k, v);
      history.replaceState(null, "", "/?" + p.toString());
    }
    const gen = ++state.gen;  // an answer to an older search (or poll) is dropped
    try {
      const data = await EQ.api("/api/find", { q: state.q, kind: state.kind, limit: state.limit, sort: state.sort,
        config: state.cols.length ? "1" : "" });
      if (gen !== state.gen) return;
      showError(null);
      state.last = data; state.signature = JSON.stringify(data.rows);
      render(data);
    } catch (err) {
      if (gen !== state.gen) return;
      showError(err);
      $("results").replaceChildren(); $("summary").textContent = "";
    }
  }

  EQ.autocomplete($("q"), $("suggest"));
  EQ.autocomplete($("columns"), $("suggest-columns"));

  $("form").addEventListener("submit", (e) => { e.preventDefault(); $("suggest").hidden = true; search(true); });
  $("columns").addEventListener("change", () => search(true));
  $("compare-picked").addEventListener("click", () => { location.href = "/compare?ids=" + encodeURIComponent([...state.picked].join(",")); });
  $("compare-all").addEventListener("click", () => { location.href = "/compare?q=" + encodeURIComponent(state.q); });
  $("clear-picked").addEventListener("click", () => { state.picked.clear(); savePicked(); document.querySelectorAll("input.pick").forEach((b) => { b.checked = false; }); document.querySelectorAll("tr.picked").forEach((t) => t.classList.remove("picked")); });
  document.querySelectorAll("input.show-col").forEach((box) => {
    box.checked = !state.hidden.has(box.value);
    box.addEventListener("change", () => {
      box.checked ? state.hidden.delete(box.value) : state.hidden.add(box.value);
      localStorage.eqHidden = JSON.stringify([...state.hidden]);
      if (state.last) render(state.last);
    });
  });
  savePicked();
  search(false);
  // live: new runs and new epochs show up without a reload
  EQ.poll(async () => {
    if (!state.last) return;
    const gen = state.gen;
    const data = await EQ.api("/api/find", { q: state.q, kind: state.kind, limit: state.limit, sort: state.sort,
      config: state.cols.length ? "1" : "" });
    if (gen !== state.gen) return;  // a search started meanwhile: its answer wins
    const sig = JSON.stringify(data.rows);
    if (sig !== state.signature) { state.last = data; state.signature = sig; render(data); }
    $("live").textContent = "live \u2022 " + new Date().toLocaleTimeString();
  }, 2000);
})();
