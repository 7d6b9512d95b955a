// Run page: facts, tags and note, metrics summary, curves from the index, images and files of the
// run folder, the config (collapsible). Curves refresh every 2 s while the run grows.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const runId = decodeURIComponent(location.pathname.split("/").pop());
  let record = null, seriesSig = "";
  EQ.header();

  function yamlish(v, indent) {
    indent = indent || "";
    if (v && typeof v === "object" && !Array.isArray(v)) {
      const keys = Object.keys(v);
      if (!keys.length) return "{}";
      return keys.map((k) => { const c = v[k];
        const nested = c && typeof c === "object" && (Array.isArray(c) ? c.some((x) => x && typeof x === "object") : Object.keys(c).length);
        return nested ? `${indent}${k}:\n${yamlish(c, indent + "  ")}` : `${indent}${k}: ${EQ.fmt(c)}`; }).join("\n");
    }
    if (Array.isArray(v)) return v.map((x) => `${indent}- ` + (x && typeof x === "object" ? "\n" + yamlish(x, indent + "  ") : EQ.fmt(x))).join("\n");
    return indent + EQ.fmt(v);
  }

  function facts(r) {
    const cfg = !r.config_id ? null : r.config_indexed
      ? EQ.el("a", { href: "/run/" + encodeURIComponent(r.config_id) }, r.config_id) : r.config_id;
    const tags = (r.tags || []).map((t) => EQ.el("span", { class: "tag" }, t));
    const rows = [["id", r.id], ["kind", r.kind], ["status", r.status], r.kind === "run" ? ["folder", r.folder] : ["path", (r.paths || []).join("\n")],
      ["started", EQ.time(r.started_at)], ["ended", EQ.time(r.ended_at)], ["config", cfg],
      ["tags", EQ.el("span", { id: "tags" }, tags.length ? tags : EQ.el("span", { class: "muted" }, "(none)"))],
      ["note", EQ.el("span", { id: "note", style: "white-space: pre-wrap" }, r.note || "")]];
    if (r.kind === "run" || r.kind === "config") rows.push(["edit", editor(r)]);
    $("facts").replaceChildren(...rows.filter(([, v]) => v).map(([k, v]) => EQ.el("tr", {}, EQ.el("td", {}, k), EQ.el("td", {}, v))));
  }

  function editor(r) {
    const tagBox = EQ.el("input", { type: "text", id: "tag-input", size: 24, placeholder: "+baseline -old", spellcheck: "false" });
    const note = EQ.el("textarea", { id: "note-input", rows: 2, cols: 60 });
    note.value = r.note || "";
    const msg = EQ.el("span", { id: "edit-msg", class: "muted" });
    async function send(body) {
      try { const updated = await EQ.post("/api/annotate/" + encodeURIComponent(r.id), body);
        record.tags = updated.tags; record.note = updated.note; facts(record); $("edit-msg").textContent = "saved"; }
      catch (err) { $("edit-msg").textContent = err.message; }
    }
    return EQ.el("div", {},
      EQ.el("div", { class: "row" }, tagBox, EQ.el("button", { id: "tag-apply", onclick: () => {
        const changes = tagBox.value.split(/[\s,]+/).filter(Boolean); if (changes.length) send({ tags: changes }); } }, "Apply tags")),
      EQ.el("div", { class: "row", style: "margin-top:.3em" }, note, EQ.el("button", { id: "note-save", onclick: () => send({ note: note.value }) }, "Save note")),
      msg);
  }

  function metrics(r) {
    const m = r.metrics || {};
    const names = Object.keys(m).sort();
    $("metrics").replaceChildren(EQ.el("thead", {}, EQ.el("tr", {}, EQ.el("th", { style: "width:220px" }, "metric"), EQ.el("th", { style: "width:140px" }, "last"), EQ.el("th", { style: "width:140px" }, "best"))),
      EQ.el("tbody", {}, names.map((n) => EQ.el("tr", {}, EQ.el("td", {}, n), EQ.el("td", { class: "num" }, EQ.fmt(m[n].last)), EQ.el("td", { class: "num" }, EQ.fmt(m[n].best))))));
  }

  let curvesGen = 0;
  async function curves(force) {
    const gen = ++curvesGen;
    const data = await EQ.api("/api/series", { ids: runId });
    if (gen !== curvesGen) return;  // a newer draw was asked for meanwhile
    const per = Object.values(data.runs)[0] || {};
    const sig = JSON.stringify(Object.entries(per).map(([k, v]) => [k, v.value.length])) + $("xaxis").value + $("logy").checked;
    if (!force && sig === seriesSig) return;
    seriesSig = sig;
    const box = $("curves"); box.replaceChildren();
    const names = Object.keys(per).sort();
    if (!names.length) box.append(EQ.el("div", { class: "muted" }, "no per-epoch values in the index for this run"));
    const x = $("xaxis").value;
    for (const name of names) {
      const div = EQ.el("div", { class: "chart", "data-metric": name, style: "flex: 0 0 auto" });
      box.append(div);
      const s = per[name];
      EQ.lineChart(div, [{ label: name, xs: s[x], ys: s.value }], { title: name, xLabel: x, logY: $("logy").checked, width: 560, height: 220 });
    }
  }

  function files(r) {
    const id = encodeURIComponent(r.id);
    const fileUrl = (p) => `/api/file/${id}/` + p.split("/").map(encodeURIComponent).join("/");
    const imgs = (r.files || []).filter((f) => f.image);
    $("images-section").hidden = !imgs.length;
    $("images").replaceChildren(...imgs.map((f) => EQ.el("figure", { style: "display:inline-block;margin:0 1em 1em 0" },
      EQ.el("img", { src: fileUrl(f.path), alt: f.path, style: "width:240px" }), EQ.el("figcaption", { class: "muted" }, f.path))));
    $("files").replaceChildren(EQ.el("tbody", {}, (r.files || []).map((f) => EQ.el("tr", {},
      EQ.el("td", { style: "width:420px" }, EQ.el("a", { href: fileUrl(f.path), target: "_blank", rel: "noopener" }, f.path)),
      EQ.el("td", { class: "num", style: "width:120px" }, f.size + " B")))));
  }

  async function load() {
    try {
      record = await EQ.api("/api/run/" + encodeURIComponent(runId));
    } catch (err) {
      $("title").textContent = runId; $("error").append(EQ.el("pre", { class: "error" }, err.message)); return;
    }
    document.title = "ednaquery: " + record.id;
    $("title").textContent = (record.kind === "run" ? "Run " : "Config ") + record.id;
    facts(record); metrics(record); files(record);
    $("config").textContent = yamlish(record.config || {});
    await curves(true);
  }
  $("xaxis").addEventListener("change", () => curves(true));
  $("logy").addEventListener("change", () => curves(true));
  load();
  EQ.poll(async () => {
    if (!record) return;
    const r = await EQ.api("/api/run/" + encodeURIComponent(runId));
    if (JSON.stringify([r.status, r.metrics, r.tags, r.note]) !== JSON.stringify([record.status, record.metrics, record.tags, record.note])) {
      const typing = document.activeElement && ["tag-input", "note-input"].includes(document.activeElement.id);
      record = r; if (!typing) facts(r); metrics(r); files(r);
    }
    await curves(false);
    $("live").textContent = "live \u2022 " + new Date().toLocaleTimeString();
  }, 2000);
})();
