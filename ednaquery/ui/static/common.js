// ednaquery ui: helpers shared by every page. Data is only ever put in the DOM as text (never as HTML).
"use strict";
const EQ = {};
EQ.el = function (tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "style") node.setAttribute("style", v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    node.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
};
EQ.api = async function (path, params) {
  const url = new URL(path, location.origin);
  for (const [k, v] of Object.entries(params || {})) {
    if (Array.isArray(v)) v.forEach((x) => url.searchParams.append(k, x));
    else if (v !== undefined && v !== null && v !== "") url.searchParams.set(k, v);
  }
  const resp = await fetch(url, { headers: { Accept: "application/json" } });
  const body = await resp.json();
  if (!resp.ok) { const e = new Error(body.error || resp.statusText); e.body = body; e.status = resp.status; throw e; }
  return body;
};
EQ.post = async function (path, body) {
  const resp = await fetch(new URL(path, location.origin), { method: "POST", body: JSON.stringify(body),
    headers: { "Content-Type": "application/json", Accept: "application/json" } });
  const data = await resp.json();
  if (!resp.ok) { const e = new Error(data.error || resp.statusText); e.body = data; e.status = resp.status; throw e; }
  return data;
};
EQ.fmt = function (v) {
  if (v === null || v === undefined) return "";
  if (typeof v === "number") {
    if (Number.isInteger(v)) return String(v);
    const a = Math.abs(v);
    return (a !== 0 && (a < 1e-3 || a >= 1e6)) ? v.toExponential(3).replace(/\.?0+e/, "e") : String(+v.toPrecision(6));
  }
  if (typeof v === "object") {
    if (v.missing) return "(missing)";
    return JSON.stringify(v);
  }
  return String(v);
};
EQ.clip = (text, n) => (text.length > n ? text.slice(0, n - 1) + "\u2026" : text);
// long paths lose their middle, never their file name: "/tmp/a/b/…/run-07/metrics.jsonl"
EQ.middle = (text, n) => { if (text.length <= n) return text; const tail = Math.ceil((n - 1) * 0.6);
  return text.slice(0, n - 1 - tail) + "\u2026" + text.slice(text.length - tail); };
EQ.time = function (t) {
  if (!t) return "";
  return new Date(t * 1000).toISOString().replace("T", " ").slice(0, 19) + "Z";
};
EQ.shortId = (id) => (id && id.length > 20 && /^[0-9a-f]+$/.test(id) ? id.slice(0, 12) : id);
EQ.path = (r) => (r.paths && r.paths.length ? r.paths[0] + (r.paths.length > 1 ? ` (+${r.paths.length - 1})` : "") : "");
// flat {dotted.key: value} of a nested config
EQ.flatten = function (obj, prefix, out) {
  out = out || {};
  if (obj && typeof obj === "object" && !Array.isArray(obj)) {
    const keys = Object.keys(obj);
    if (!keys.length && prefix) out[prefix] = {};
    for (const k of keys) EQ.flatten(obj[k], prefix ? prefix + "." + k : k, out);
  } else if (Array.isArray(obj)) {
    if (obj.every((x) => x === null || typeof x !== "object")) out[prefix] = obj;
    else obj.forEach((x, i) => EQ.flatten(x, `${prefix}[${i}]`, out));
  } else out[prefix] = obj;
  return out;
};
EQ.colors = (i, n) => `hsl(${Math.round((i * 360) / Math.max(n, 1) + (i % 2) * 17) % 360}, 70%, 42%)`;
// poll fn every ms while the page is visible (the "live" part of every page)
EQ.poll = function (fn, ms) {
  let busy = false;
  setInterval(async () => {
    if (busy || document.hidden) return;
    busy = true;
    try { await fn(); } catch (e) { /* a failed poll waits for the next */ } finally { busy = false; }
  }, ms);
};
EQ.header = function () {
  const h = EQ.el("header", {},
    EQ.el("a", { class: "brand", href: "/" }, "ednaquery"),
    EQ.el("a", { href: "/" }, "search"),
    EQ.el("a", { href: "/compare" + (localStorage.eqPicked ? "?ids=" + encodeURIComponent(localStorage.eqPicked) : "") }, "compare"),
    EQ.el("span", { class: "live", id: "live" }, ""));
  document.body.prepend(h);
};
// autocomplete of keys from the catalogue (/api/keys) for the word under the cursor of an input
EQ.autocomplete = function (input, box) {
  let sugg = [], on = -1, timer = null;
  function tokenAt() {
    const pos = input.selectionStart, text = input.value;
    let a = pos; while (a > 0 && /[\w.\-`*]/.test(text[a - 1])) a--;
    let b = pos; while (b < text.length && /[\w.\-`*]/.test(text[b])) b++;
    return { a, b, word: text.slice(a, b) };
  }
  async function suggest() {
    const t = tokenAt();
    if (t.word.length < 1) { box.hidden = true; return; }
    const data = await EQ.api("/api/keys", { prefix: t.word, limit: 12 });
    sugg = data.keys; on = -1;
    box.replaceChildren(...sugg.map((k, i) => EQ.el("div", { "data-key": k.key, onmousedown: (e) => { e.preventDefault(); pick(i); } },
      EQ.el("span", {}, k.key), EQ.el("span", { class: "muted" }, k.count === null ? "" : String(k.count)))));
    box.hidden = sugg.length === 0;
  }
  function pick(i) {
    const t = tokenAt();
    input.value = input.value.slice(0, t.a) + sugg[i].key + input.value.slice(t.b);
    input.selectionStart = input.selectionEnd = t.a + sugg[i].key.length;
    box.hidden = true; input.focus();
  }
  input.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(() => suggest().catch(() => {}), 120); });
  input.addEventListener("blur", () => setTimeout(() => { box.hidden = true; }, 100));
  input.addEventListener("keydown", (e) => {
    if (box.hidden || !sugg.length) return;
    if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      e.preventDefault(); on = (on + (e.key === "ArrowDown" ? 1 : sugg.length - 1)) % sugg.length;
      [...box.children].forEach((c, i) => c.classList.toggle("on", i === on));
    } else if ((e.key === "Tab" || e.key === "Enter") && on >= 0) { e.preventDefault(); pick(on); }
    else if (e.key === "Escape") box.hidden = true;
  });
};
