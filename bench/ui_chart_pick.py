"""Why uPlot: frame times of 100 runs x 1,000 points panned and zoomed, in headless Chromium.

Usage: ``.venv/bin/python bench/ui_chart_pick.py [--chartjs PATH/chart.umd.min.js]``

Draws 100 series of 1,000 points with the vendored uPlot (and, given ``--chartjs``, Chart.js 4
from ``npm pack chart.js``, line charts without points or animation), then changes the x range
once per animation frame for 60 frames (zoom in, then pan) and prints the median and p95 time
between frames: 16.7 ms is 60 fps, the idle baseline is printed for reference. Needs Debian's
chromium and chromium-driver (``make browser``) and selenium.
"""
from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from importlib.resources import files
from pathlib import Path

PAGE = r"""<!doctype html><html><head><link rel=stylesheet href=uPlot.min.css>
<script src=uPlot.iife.min.js></script>%CHARTJS%</head>
<body><div id=u></div><div style="width:900px;height:400px"><canvas id=c width=900 height=400></canvas></div>
<script>
const R = 100, N = 1000;
const X = [...Array(N).keys()];
const YS = [];
for (let r = 0; r < R; r++) { let v = 1; YS.push(X.map(() => { v = v * 0.995 + Math.random() * 0.01; return v + r * 0.01; })); }
function frames(step) { return new Promise((res) => { const ts = []; let k = 0, last = performance.now();
  function f() { const t = performance.now(); if (k > 0) ts.push(t - last); last = t;
    if (k >= 60) { res(ts); return; } step(k); k++; requestAnimationFrame(f); }
  requestAnimationFrame(f); }); }
function zoom(k) { return k < 30 ? [k * 10, 999 - k * 10] : [(k - 30) * 20, (k - 30) * 20 + 400]; }
async function idle() { return { init: 0, ts: await frames(() => {}) }; }
async function benchU() { const t0 = performance.now();
  const series = [{}].concat(YS.map((_, i) => ({ stroke: `hsl(${i * 37 % 360},70%,45%)`, width: 1 })));
  const u = new uPlot({ width: 900, height: 400, series, scales: { x: { time: false } }, legend: { show: false } },
    [X, ...YS], document.getElementById("u"));
  await new Promise((r) => setTimeout(r, 0));
  const init = performance.now() - t0;
  const ts = await frames((k) => { const [a, b] = zoom(k); u.setScale("x", { min: a, max: b }); });
  u.destroy(); return { init, ts }; }
async function benchC() { if (!window.Chart) return null; const t0 = performance.now();
  const ch = new Chart(document.getElementById("c"), { type: "line",
    data: { labels: X, datasets: YS.map((y, i) => ({ data: y, borderColor: `hsl(${i * 37 % 360},70%,45%)`, borderWidth: 1, pointRadius: 0 })) },
    options: { animation: false, responsive: false, normalized: true, plugins: { legend: { display: false }, tooltip: { enabled: false } },
      scales: { x: { type: "linear" } } } });
  const init = performance.now() - t0;
  const ts = await frames((k) => { const [a, b] = zoom(k); ch.options.scales.x.min = a; ch.options.scales.x.max = b; ch.update("none"); });
  return { init, ts }; }
function stats(r) { if (!r) return null; const s = [...r.ts].sort((a, b) => a - b);
  return { first_draw_ms: +r.init.toFixed(1), median_frame_ms: +s[s.length >> 1].toFixed(1), p95_frame_ms: +s[Math.floor(s.length * 0.95)].toFixed(1) }; }
window.run = async () => ({ idle: stats(await idle()), uplot: stats(await benchU()), chartjs: stats(await benchC()) });
</script></body></html>"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chartjs", help="chart.umd.min.js of Chart.js 4 (npm pack chart.js), to compare")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    from selenium import webdriver

    work = Path(tempfile.mkdtemp(prefix="eq-chart-pick-"))
    try:
        vendor = files("ednaquery.ui") / "static" / "vendor" / "uplot"
        for name in ("uPlot.iife.min.js", "uPlot.min.css"):
            (work / name).write_bytes((vendor / name).read_bytes())
        chartjs = ""
        if args.chartjs:
            shutil.copy(args.chartjs, work / "chart.umd.min.js")
            chartjs = "<script src=chart.umd.min.js></script>"
        (work / "bench.html").write_text(PAGE.replace("%CHARTJS%", chartjs))
        opts = webdriver.ChromeOptions()
        opts.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1200,1000"):
            opts.add_argument(arg)
        driver = webdriver.Chrome(service=webdriver.ChromeService(shutil.which("chromedriver")), options=opts)
        driver.set_script_timeout(180)
        try:
            for i in range(args.rounds):
                driver.get((work / "bench.html").as_uri())
                result = driver.execute_async_script("window.run().then(arguments[0])")
                print(f"round {i + 1}: " + json.dumps(result), flush=True)
        finally:
            driver.quit()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
