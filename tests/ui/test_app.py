"""The ui's JSON API through the ASGI test client: what the pages read, and what they must never serve."""
from __future__ import annotations

import threading
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

pytest.importorskip("starlette")
pytest.importorskip("httpx")

from starlette.testclient import TestClient

import ednaquery
from ednaquery.cli import main
from ednaquery.store.sqlite import SQLiteStore
from ednaquery.ui import create_app
from ednaquery.ui.payload import config_diff
from ednaquery.ui.serve import exposure_warning, serve


@pytest.fixture(scope="module")
def ix(sweep):
    index = ednaquery.connect(sweep.db)
    yield index
    index.close()


@pytest.fixture(scope="module")
def client(ix):
    return TestClient(create_app(ix), base_url="http://127.0.0.1")


def test_a_host_header_that_is_not_loopback_is_refused(sweep, ix):
    """DNS rebinding: a page on evil.example resolving to 127.0.0.1 sends Host: evil.example."""
    for base in ("http://127.0.0.1:8765", "http://localhost:8765"):
        assert TestClient(create_app(ix), base_url=base).get("/api/status").status_code == 200
    evil = TestClient(create_app(ix), base_url="http://evil.example:8765")
    for url in ("/api/status", f"/api/file/{sweep.ids[1]}/config.yaml", "/"):
        assert evil.get(url).status_code == 400, url
    # bound to an address of its own, that name works too; on every interface (warned about) any name does
    assert TestClient(create_app(ix, host="10.1.2.3"), base_url="http://10.1.2.3").get("/api/status").status_code == 200
    assert TestClient(create_app(ix, host="0.0.0.0"), base_url="http://box.lan").get("/api/status").status_code == 200


def test_a_config_folder_is_never_served(tmp_path):
    """A config in a home-like folder: its neighbours (an ssh key) are not a run's files."""
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "id_rsa").write_text("PRIVATE KEY")
    (tmp_path / "c.yaml").write_text("model: resnet18\nlr: 0.001\n")
    db = str(tmp_path / "index.db")
    assert CliRunner().invoke(main, ["--store", db, "index", str(tmp_path / "c.yaml")]).exit_code == 0
    index = ednaquery.connect(db)
    try:
        cid = index.find("kind=config")[0].id
        client = TestClient(create_app(index), base_url="http://127.0.0.1")
        assert client.get(f"/api/file/{cid}/.ssh/id_rsa").status_code == 404
        assert client.get(f"/api/file/{cid}/c.yaml").status_code == 404
        body = client.get(f"/api/run/{cid}").json()
        assert body["files"] == [] and body["folder"] is None
    finally:
        index.close()


def cli_ids(db: str, *query: str) -> list[str]:
    out = CliRunner().invoke(main, ["--store", db, "find", *query, "--format", "ids"])
    assert out.exit_code in (0, 1), out.output
    return out.output.split()


def test_find_rows_are_the_cli_rows_in_order(sweep, client):
    body = client.get("/api/find", params={"q": "lr<1e-3"}).json()
    assert [r["id"] for r in body["rows"]] == cli_ids(sweep.db, "lr<1e-3")
    assert body["columns"] == ["optimizer.lr"]  # the key the query's lr matched, by its full name
    assert sorted(r["values"]["optimizer.lr"] for r in body["rows"]) == [1e-4, 3e-4, 5e-4]


def test_find_sorts_limits_and_filters_kind_like_the_cli(sweep, client):
    body = client.get("/api/find", params={"q": "", "kind": "run", "sort": "-lr", "limit": "4"}).json()
    assert [r["id"] for r in body["rows"]] == cli_ids(sweep.db, "--kind", "run", "--sort=-lr", "--limit", "4")
    assert [r["id"] for r in body["rows"]] == sweep.ids[::-1][:4]


def test_syntax_error_gives_position_for_the_caret(client):
    resp = client.get("/api/find", params={"q": "lr<< model=vit"})
    assert resp.status_code == 400
    body = resp.json()
    assert body["query"] == "lr<< model=vit" and body["position"] == 3
    assert "expected a value" in body["error"]


def test_keys_autocomplete_from_the_catalogue(client):
    keys = [k["key"] for k in client.get("/api/keys", params={"prefix": "optim"}).json()["keys"]]
    assert {"optimizer.lr", "optimizer.name", "optimizer.weight_decay"} <= set(keys)
    assert all("optim" in k for k in keys)


def test_a_search_is_answered_while_the_key_catalogue_is_read(sweep, monkeypatch):
    """The catalogue read (seconds on a big index) holds its store connection; a search must not wait for it."""
    started, release = threading.Event(), threading.Event()
    real = SQLiteStore.key_stats

    def held_key_stats(self, *args, **kwargs):  # a slow read: inside the store's guard until released
        return self._guard(lambda: (started.set(), release.wait(30), real(self, *args, **kwargs))[2])

    monkeypatch.setattr(SQLiteStore, "key_stats", held_key_stats)
    index = ednaquery.connect(sweep.db)
    app = create_app(index)
    keys: dict = {}
    found: dict = {}
    reader = threading.Thread(target=lambda: keys.update(
        TestClient(app, base_url="http://127.0.0.1").get("/api/keys", params={"prefix": "optim"}).json()))
    searcher = threading.Thread(target=lambda: found.update(
        TestClient(app, base_url="http://127.0.0.1").get("/api/find", params={"q": "lr<1e-3"}).json()))
    try:
        reader.start()
        assert started.wait(10)
        searcher.start()
        searcher.join(10)
        answered_during_read = not searcher.is_alive() and reader.is_alive()
    finally:
        release.set()
        reader.join(30)
        searcher.join(30)
        index.close()
    assert answered_during_read
    assert [r["id"] for r in found["rows"]] == cli_ids(sweep.db, "lr<1e-3")
    assert "optimizer.lr" in {k["key"] for k in keys["keys"]}


def test_run_page_data_lists_the_folder_files_but_not_a_link_out(sweep, client):
    body = client.get(f"/api/run/{sweep.ids[0]}").json()
    files = {f["path"]: f for f in body["files"]}
    assert {"config.yaml", "metrics.jsonl", "run.json", "summary.json", "confusion_matrix.png"} <= set(files)
    assert files["confusion_matrix.png"]["image"] and not files["config.yaml"]["image"]
    assert "link_out.txt" not in files
    assert body["metrics"]["val_acc"]["last"] == pytest.approx(0.86)
    assert body["folder"] == str((sweep.root / "runs" / sweep.ids[0]).resolve())
    assert client.get("/api/run/nosuchrun").status_code == 404


def test_series_has_every_epoch_of_each_run(sweep, client):
    body = client.get("/api/series", params={"ids": ",".join(sweep.ids[:3]), "metric": "val_acc"}).json()
    assert set(body["runs"]) == set(sweep.ids[:3])
    for run in sweep.ids[:3]:
        assert body["runs"][run]["val_acc"]["epoch"] == [1, 2, 3, 4, 5]
        assert body["runs"][run]["val_acc"]["step"] == [10, 20, 30, 40, 50]
        assert set(body["runs"][run]) == {"val_acc"}
    prefixes = client.get("/api/series", params={"ids": sweep.ids[1][:-2], "metric": "val_acc"}).json()
    assert list(prefixes["runs"]) == [sweep.ids[1]]
    assert client.get("/api/series", params={"ids": "nosuchrun"}).status_code == 404


def test_diff_shows_only_the_keys_that_differ(sweep, client):
    body = client.get("/api/diff", params={"ids": ",".join(sweep.ids[:3])}).json()
    keys = {r["key"] for r in body["rows"]}
    assert {"model.name", "optimizer.lr"} <= keys
    assert not keys & {"optimizer.name", "optimizer.weight_decay", "data.img_size", "train.epochs"}
    lr = next(r for r in body["rows"] if r["key"] == "optimizer.lr")
    assert lr["values"] == [1e-4, 3e-4, 5e-4]


def test_diff_treats_equal_numbers_as_equal():
    a = {"config": {"lr": "1e-3", "bs": 64, "flag": True, "name": "a"}}
    b = {"config": {"lr": 0.001, "bs": 64.0, "flag": 1, "extra": 2, "name": "a"}}
    rows = {r["key"]: r["values"] for r in config_diff([a, b])}
    assert set(rows) == {"flag", "extra"}
    assert rows["extra"] == [{"missing": True}, 2]


def test_diff_names_keys_as_the_api_does(tmp_path):
    """A key with a dot (%-escaped in the store) shows its real name; a list is one value, as in to_pandas(),
    and lists of equal numbers are equal."""
    (tmp_path / "a.yaml").write_text('train:\n  "opt.lr": 0.1\n  aug: [flip, crop]\n  bs: 64\n  lrs: [1e-3, 2]\n')
    (tmp_path / "b.yaml").write_text('train:\n  "opt.lr": 0.2\n  aug: [flip]\n  bs: 64.0\n  lrs: [0.001, 2.0]\n')
    db = str(tmp_path / "index.db")
    assert CliRunner().invoke(main, ["--store", db, "index", str(tmp_path)]).exit_code == 0
    index = ednaquery.connect(db)
    try:
        found = sorted(index.find("kind=config"), key=lambda r: r.path)  # a.yaml, b.yaml
        ids = [r.id for r in found]
        assert "opt%2Elr" in found[0].doc["config"]["train"]  # escaped where it is stored
        client = TestClient(create_app(index), base_url="http://127.0.0.1")
        body = client.get("/api/diff", params={"ids": ",".join(ids)}).json()
        rows = {r["key"]: r["values"] for r in body["rows"]}
        assert rows == {"train.opt.lr": [0.1, 0.2], "train.aug": [["flip", "crop"], ["flip"]]}
        cli = CliRunner().invoke(main, ["--store", db, "diff", *ids])
        assert "train.opt.lr" in cli.output and "%2E" not in cli.output
        pd = pytest.importorskip("pandas")
        assert set(rows) <= set(index.find("kind=config").to_pandas().columns) and pd is not None
    finally:
        index.close()


@pytest.mark.parametrize("path", [
    "../secret.txt", "..%2Fsecret.txt", "%2E%2E/secret.txt", "sub/../../secret.txt",
    "/etc/passwd", "%2Fetc%2Fpasswd", "link_out.txt", "", ".", "nosuch.txt",
])
def test_files_outside_the_run_folder_are_404(sweep, client, path):
    resp = client.get(f"/api/file/{sweep.ids[0]}/{path}")
    assert resp.status_code == 404
    assert "top secret" not in resp.text and "root:" not in resp.text


def test_raw_traversal_urls_are_404(sweep, client):
    # the raw request line, not normalised by a client
    for raw in (f"/api/file/{sweep.ids[0]}/../../../secret.txt", f"/api/file/{sweep.ids[0]}//etc/passwd",
                f"/api/file/{sweep.ids[0]}/..\\..\\secret.txt"):
        resp = client.get(raw)
        assert resp.status_code == 404, raw


def test_a_file_of_the_run_folder_is_served_inert(sweep, client):
    folder = sweep.root / "runs" / sweep.ids[1]
    (folder / "report.html").write_text("<script>alert(1)</script>")
    resp = client.get(f"/api/file/{sweep.ids[1]}/report.html")
    assert resp.status_code == 200 and resp.text == "<script>alert(1)</script>"
    assert resp.headers["content-type"].startswith("text/plain")
    assert "sandbox" in resp.headers["content-security-policy"]
    png = client.get(f"/api/file/{sweep.ids[1]}/confusion_matrix.png")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert client.get("/api/file/nosuchrun/config.yaml").status_code == 404


def test_only_reads_are_allowed(sweep, client):
    for path in ("/api/find", f"/api/run/{sweep.ids[0]}", "/api/diff", "/api/series", "/api/keys",
                 f"/api/file/{sweep.ids[0]}/config.yaml", "/"):
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            assert client.request(method, path).status_code == 405, (method, path)


def test_pages_and_assets_are_served_with_a_strict_policy(client):
    for path in ("/", "/run/anything", "/compare", "/static/vendor/uplot/uPlot.iife.min.js", "/static/app.css"):
        resp = client.get(path)
        assert resp.status_code == 200, path
        assert "script-src 'self'" in resp.headers["content-security-policy"]
        assert resp.headers["x-content-type-options"] == "nosniff"


def test_pages_never_insert_data_as_html():
    static = Path(__file__).resolve().parents[2] / "ednaquery" / "ui" / "static"
    for js in static.glob("*.js"):
        text = js.read_text()
        assert "innerHTML" not in text and "insertAdjacentHTML" not in text and "document.write" not in text, js


def test_mongodb_passwords_never_reach_a_page(tmp_path):
    run = tmp_path / "runs" / "20261204-130000-cafe"
    run.mkdir(parents=True)
    (run / "run.json").write_text('{"format": "ednaquery-run", "run_id": "20261204-130000-cafe", "status": "completed"}')
    (run / "config.yaml").write_text(yaml.safe_dump({"store": "mongodb://alice:hunter2@db.example/x",
                                                     "model": {"name": "vit"}}))
    db = str(tmp_path / "index.db")
    assert CliRunner().invoke(main, ["--store", db, "index", str(tmp_path / "runs")]).exit_code == 0
    with ednaquery.connect(db) as index:
        client = TestClient(create_app(index, store_uri="mongodb://bob:s3cr3tpw@db.example/x"),
                            base_url="http://127.0.0.1")
        texts = [client.get(p).text for p in ("/api/find?q=model=vit&config=1", "/api/run/20261204-130000-cafe",
                                               "/api/runs?ids=20261204-130000-cafe", "/api/keys?prefix=store")]
    joined = "\n".join(texts)
    assert "alice" in joined and "db.example" in joined
    assert "hunter2" not in joined and "s3cr3tpw" not in joined


def test_host_warning_only_off_loopback():
    assert exposure_warning("127.0.0.1") is None
    assert exposure_warning("::1") is None
    assert exposure_warning("localhost") is None
    warning = exposure_warning("0.0.0.0")
    assert warning and warning.startswith("warning:") and "0.0.0.0" in warning


def test_serve_prints_the_url_and_the_warning(ix, monkeypatch):
    import uvicorn

    ran = []
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets=None: ran.append(sockets))
    lines: list[str] = []
    serve(ix, "0.0.0.0", 0, say=lines.append)
    assert lines[0].startswith("warning: listening on 0.0.0.0")
    assert lines[1].startswith("ednaquery ui: http://0.0.0.0:") and ran
    lines.clear()
    serve(ix, "127.0.0.1", 0, say=lines.append)
    assert len(lines) == 1 and lines[0].startswith("ednaquery ui: http://127.0.0.1:")


def test_ui_command_is_listed_with_its_options():
    out = CliRunner().invoke(main, ["ui", "--help"])
    assert out.exit_code == 0 and "--host" in out.output and "127.0.0.1" in out.output


def test_ui_without_the_extra_is_one_line_naming_it(sweep, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "uvicorn", None)  # as if the 'ui' extra were not installed
    out = CliRunner().invoke(main, ["--store", sweep.db, "ui", "--port", "0"])
    assert out.exit_code == 2
    assert out.output.strip().splitlines() == [
        "error: ednaquery ui needs the 'ui' extra (uvicorn is missing): pip install 'ednaquery[ui]'"]


def test_ui_on_a_busy_port_is_one_line(sweep):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        out = CliRunner().invoke(main, ["--store", sweep.db, "ui", "--port", str(port)])
    assert out.exit_code == 2
    assert out.output.strip().startswith(f"error: cannot listen on 127.0.0.1:{port}")


def test_tags_and_notes_are_the_one_write(sweep, client, ix):
    run = sweep.ids[4]
    url = f"/api/annotate/{run}"
    assert client.post(url, content='{"tags": ["+baseline"]}').status_code == 403  # not JSON: a form could send it
    assert client.post(url, json={"tags": ["+baseline"]}, headers={"Origin": "http://evil.example"}).status_code == 403
    assert client.post(url, json={"rm": "-rf"}).status_code == 400
    assert client.post(url, json={"tags": ["bad tag"]}).status_code == 400
    resp = client.post(url, json={"tags": ["+baseline", "+lr-sweep"], "note": "dropout helped"},
                       headers={"Origin": "http://127.0.0.1"})
    assert resp.status_code == 200, resp.text
    assert {"baseline", "lr-sweep"} <= set(resp.json()["tags"]) and resp.json()["note"] == "dropout helped"
    assert [r.id for r in ix.find("tags=baseline")] == [run]
    assert [r.id for r in ix.find("note~dropout")] == [run]
    assert (sweep.root / "runs" / run / ".ednaquery-annotations.json").is_file()  # the filesystem keeps them
    assert set(client.post(url, json={"tags": ["-lr-sweep"]}).json()["tags"]) >= {"baseline"}
    assert "lr-sweep" not in client.get(f"/api/run/{run}").json()["tags"]


def test_a_store_that_goes_away_is_a_masked_one_line_503(sweep):
    from ednaquery.errors import StoreUnavailable

    class Down:
        def find(self, *a, **k):
            raise StoreUnavailable("cannot reach MongoDB at mongodb://eve:pa55word@db.example/x: timed out")

        get = count = keys = series_points = find

    client = TestClient(create_app(Down(), store_uri="mongodb://eve:pa55word@db.example/x"),
                        base_url="http://127.0.0.1")
    for path in ("/api/find?q=lr<1", "/api/run/abcd", "/api/status", "/api/series?ids=abcd"):
        resp = client.get(path)
        assert resp.status_code == 503, path
        assert "pa55word" not in resp.text and "cannot reach MongoDB" in resp.json()["error"]
