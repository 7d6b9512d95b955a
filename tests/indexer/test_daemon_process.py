"""The daemon as a process: signals, pidfile, stale pidfiles, SIGKILL + restart, CLI start/status/stop.

Each test runs real daemon processes on a tmp root with the real SQLite store.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from ednaquery.errors import StoreUnavailable
from ednaquery.store import open_store
from ednaquery.store.base import PathUpdate
from indexer import cli, lifecycle
from tests.support.clock import FakeClock
from tests.support.indexer import disk_states
from tests.support.wait import wait_until

PROGRAM = [sys.executable, "-m", "indexer"]


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    sd = tmp_path / "state"
    monkeypatch.setenv("EDNAQUERY_STATE_DIR", str(sd))
    for k in ("EDNAQUERY_STORE", "EDNAQUERY_ROOTS", "EDNAQUERY_POLL", "EDNAQUERY_DEBOUNCE", "EDNAQUERY_CONFIG",
              "EDNAQUERY_RECONCILE_EVERY", "EDNAQUERY_INCLUDE", "EDNAQUERY_EXCLUDE"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "root"
    root.mkdir()
    return {"state": sd, "root": Path(os.path.realpath(root)), "db": str(tmp_path / "index.db"), "tmp": tmp_path}


class Daemon:
    """A `python -m indexer run` process (via the test child) and its files."""

    def __init__(self, env: dict, *extra: str, roots: list[Path] | None = None, prefix: list[str] | None = None):
        self.roots = [str(r) for r in (roots or [env["root"]])]
        self.files = lifecycle.DaemonFiles(env["state"], self.roots)
        self.out = env["tmp"] / f"daemon-{os.urandom(3).hex()}.out"
        cmd = [*(prefix or []), *PROGRAM, "run", "--state-dir", str(env["state"]), "--store", env["db"],
               "--debounce", "0.05", *extra, "--", *self.roots]
        with open(self.out, "wb") as f:
            self.proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT)

    def wait_running(self, timeout: float = 15) -> None:
        def up() -> bool:
            running, pid, _ = lifecycle._lock_holder(self.files.pidfile)
            return running and pid == self.proc.pid
        assert wait_until(lambda: up() or self.proc.poll() is not None, timeout), self.log()
        assert self.proc.poll() is None, self.log()

    def log(self) -> str:
        return self.out.read_text(errors="replace") if self.out.exists() else ""

    def signal(self, sig: int) -> None:
        os.kill(self.proc.pid, sig)

    def wait(self, timeout: float = 20) -> int:
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def daemons():
    made: list[Daemon] = []
    yield made
    for d in made:
        d.kill()


def start(daemons: list, env: dict, *extra: str, **kw) -> Daemon:
    d = Daemon(env, *extra, **kw)
    daemons.append(d)
    d.wait_running()
    return d


def store_states(db: str, root: Path) -> dict | None:
    """What the store records under root (None while the database is being created by the daemon)."""
    try:
        store = open_store(db)
    except StoreUnavailable:
        return None
    try:
        return store.file_states(str(root))
    finally:
        store.close()


def test_sigterm_drains_the_queue_exits_0_and_removes_the_pidfile(env: dict, daemons: list) -> None:
    root = env["root"]
    (root / "first.yaml").write_text("a: 1\n")
    d = start(daemons, env, "--debounce", "30")  # events wait 30 s: still queued at SIGTERM
    assert wait_until(lambda: len(store_states(env["db"], root) or ()) == 1, 10), d.log()
    for i in range(5):
        (root / f"late-{i}.yaml").write_text(f"i: {i}\n")
    assert wait_until(lambda: '"queue_depth": 5' in _read(d.files.status), 6), _read(d.files.status)
    d.signal(signal.SIGTERM)
    assert d.wait() == 0, d.log()
    assert store_states(env["db"], root) == disk_states(root)
    assert not d.files.pidfile.exists() and not d.files.status.exists()
    assert "finishing 5 pending changes" in d.log()


def _read(p: Path) -> str:
    try:
        return p.read_text()
    except OSError:
        return ""


def test_second_start_on_the_same_roots_is_refused_with_the_running_pid(env: dict, daemons: list) -> None:
    first = start(daemons, env)
    second = Daemon(env)
    daemons.append(second)
    assert second.wait(15) == 1
    assert f"already running on {env['root']} (pid {first.proc.pid})" in second.log()
    with pytest.raises(lifecycle.AlreadyRunning) as err:
        lifecycle.start_background([str(env["root"])], [], folder=env["state"], program=PROGRAM)
    assert err.value.pid == first.proc.pid
    sub = env["root"] / "sub"
    sub.mkdir()
    nested = Daemon(env, roots=[sub])  # overlapping roots would index the same files twice
    daemons.append(nested)
    assert nested.wait(15) == 1
    assert f"pid {first.proc.pid}" in nested.log()
    assert first.proc.poll() is None


def test_stale_pidfile_is_cleaned_up(env: dict, daemons: list) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    files = lifecycle.DaemonFiles(env["state"], [str(env["root"])])
    env["state"].mkdir(parents=True)
    files.pidfile.write_text(f"{dead.pid}\n{env['root']}\n")
    info = lifecycle.list_daemons(env["state"], clean=False)
    assert [(i.pid, i.running) for i in info] == [(dead.pid, False)]
    d = start(daemons, env)
    assert f"removed a stale pidfile of pid {dead.pid}" in d.log()
    assert files.pidfile.read_text().split()[0] == str(d.proc.pid)


def test_status_listing_removes_a_stale_pidfile(env: dict) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    files = lifecycle.DaemonFiles(env["state"], [str(env["root"])])
    env["state"].mkdir(parents=True)
    files.pidfile.write_text(f"{dead.pid}\n{env['root']}\n")
    files.status.write_text("{}")
    assert [d.running for d in lifecycle.list_daemons(env["state"])] == [False]
    assert not files.pidfile.exists() and not files.status.exists()
    result = CliRunner().invoke(cli.daemon, ["status"])
    assert result.exit_code == 3 and "no indexer is running" in result.output


def test_sigkill_mid_batch_then_restart_ends_with_store_equal_to_disk(env: dict, daemons: list) -> None:
    root = env["root"]
    d = start(daemons, env)
    grid = root / "grid"
    grid.mkdir()
    for i in range(800):
        (grid / f"run-{i:04d}.yaml").write_text(f"seed: {i}\nlr: 0.001\nmodel: {{name: vit, depth: {i % 12}}}\n")
    assert wait_until(lambda: len(store_states(env["db"], root) or ()) > 0, 20), d.log()
    d.signal(signal.SIGKILL)
    assert d.wait() == -signal.SIGKILL
    indexed = sorted(store_states(env["db"], root) or ())
    assert 0 < len(indexed) < 800, "killed half-way"
    assert d.files.pidfile.exists()  # left behind by the killed process
    # while nothing runs: change and delete files the killed daemon had indexed (which ones it got to
    # depends on timing), change and delete some it had not, and add one
    pending = sorted(set(map(str, grid.iterdir())) - set(indexed))
    changed, deleted = indexed[0::2][:10] + pending[0::2][:5], indexed[1::2][:10] + pending[1::2][:5]
    for p in changed:
        Path(p).write_text("seed: 0\nlr: 0.5\n")
    for p in deleted:
        Path(p).unlink()
    (root / "added-while-down.yaml").write_text("new: true\n")

    again = start(daemons, env)
    assert wait_until(lambda: store_states(env["db"], root) == disk_states(root), 30), again.log()
    store = open_store(env["db"])
    try:
        for p in changed:
            assert store.history(p)[0]["config"] == {"seed": 0, "lr": 0.5}, p
        for p in indexed[1::2][:10]:
            assert store.history(p)[0]["deleted"] is True, p
        for p in pending[1::2][:5]:  # never indexed: nothing to remember
            assert store.history(p) == [], p
    finally:
        store.close()


def test_sighup_walks_the_roots(env: dict, daemons: list) -> None:
    root = env["root"]
    (root / "a.yaml").write_text("a: 1\n")
    d = start(daemons, env)
    assert wait_until(lambda: len(store_states(env["db"], root) or ()) == 1, 10)
    store = open_store(env["db"])  # the store loses track of a file (as if an event was missed)
    store.apply([PathUpdate(str(root / "a.yaml"), [], None)])
    store.close()
    assert store_states(env["db"], root) == {}
    d.signal(signal.SIGHUP)
    assert wait_until(lambda: len(store_states(env["db"], root) or ()) == 1, 10), d.log()
    assert "SIGHUP received" in d.log()


def test_cli_daemon_start_status_stop(env: dict, daemons: list) -> None:
    root = env["root"]
    (root / "a.yaml").write_text("a: 1\n")
    from ednaquery.cli import main as ednaquery_main

    runner = CliRunner()
    # through the `ednaquery` command (plug-in entry point), with the group's --store
    res = runner.invoke(ednaquery_main, ["--store", env["db"], "daemon", "start", "--debounce", "0.05", str(root)])
    assert res.exit_code == 0, res.output
    assert "indexer started (pid" in res.output
    pid = int(res.output.split("(pid ")[1].split(")")[0])
    try:
        res = runner.invoke(cli.daemon, ["start", "--store", env["db"], str(root)])
        assert res.exit_code == 1 and f"already running on {root} (pid {pid})" in res.output

        def indexed() -> bool:
            st = json.loads(runner.invoke(cli.daemon, ["status", "--json"]).output)
            return bool(st) and st[0].get("files_indexed") == 1
        assert wait_until(indexed, 10)
        assert json.loads(runner.invoke(cli.daemon, ["status", "--json"]).output)[0]["store"].endswith(env["db"])
        res = runner.invoke(cli.daemon, ["status"])
        assert res.exit_code == 0
        for word in (f"pid {pid}", str(root), "uptime", "queue depth", "files indexed", "errors", "last event",
                     "[up]"):
            assert word in " ".join(res.output.split()), res.output
        res = runner.invoke(cli.daemon, ["stop"])
        assert res.exit_code == 0 and f"stopped indexer pid {pid}" in res.output
        assert not lifecycle.pid_alive(pid) or not lifecycle.list_daemons()
        res = runner.invoke(cli.daemon, ["status"])
        assert res.exit_code == 3
    finally:
        if lifecycle.pid_alive(pid):
            os.kill(pid, signal.SIGKILL)


needs_setpriv = pytest.mark.skipif(os.geteuid() == 0 and not shutil.which("setpriv"),
                                   reason="running as root without setpriv: cannot make a folder unreadable")


@needs_setpriv
def test_unreadable_root_and_folder_get_one_line_each_and_the_rest_is_indexed(env: dict, daemons: list) -> None:
    locked_root = env["tmp"] / "locked-root"
    locked_root.mkdir()
    (locked_root / "x.yaml").write_text("x: 1\n")
    root = env["root"]
    (root / "ok.yaml").write_text("ok: 1\n")
    (root / "locked").mkdir()
    (root / "locked" / "hidden.yaml").write_text("h: 1\n")
    os.chmod(locked_root, 0)
    os.chmod(root / "locked", 0)
    # as root, drop the capabilities that bypass permission bits
    prefix = (["setpriv", "--inh-caps=-dac_override,-dac_read_search",
               "--bounding-set=-dac_override,-dac_read_search"] if os.geteuid() == 0 else [])
    try:
        d = start(daemons, env, roots=[locked_root, root], prefix=prefix)
        def files() -> set:  # (the locked folder itself holds an error record: `ednaquery errors` lists it)
            return set(store_states(env["db"], root) or ()) - {str(root / "locked")}
        assert wait_until(lambda: len(files()) == 1, 10), d.log()
        assert str(root / "locked") in (store_states(env["db"], root) or ())
        d.signal(signal.SIGHUP)  # a second walk: no second line for the same folder
        assert wait_until(lambda: "SIGHUP" in d.log(), 5)
        (root / "more.yaml").write_text("more: 1\n")
        assert wait_until(lambda: len(files()) == 2, 10), d.log()
        d.signal(signal.SIGTERM)
        assert d.wait() == 0
    finally:
        os.chmod(locked_root, 0o755)
        os.chmod(root / "locked", 0o755)
    log = d.log()
    assert log.count(f"cannot read root {locked_root}: Permission denied") == 1, log
    assert log.count(f"cannot read folder {root / 'locked'}: Permission denied") == 1, log


def test_watch_in_the_foreground_stops_cleanly_on_ctrl_c(env: dict, daemons: list) -> None:
    root = env["root"]
    (root / "a.yaml").write_text("a: 1\n")
    out = env["tmp"] / "watch.out"
    with open(out, "wb") as f:
        proc = subprocess.Popen([*PROGRAM, "watch", "--store", env["db"], "--debounce", "0.05", str(root)],
                                stdout=f, stderr=subprocess.STDOUT)
    try:
        assert wait_until(lambda: len(store_states(env["db"], root) or ()) == 1, 10), out.read_text()
        (root / "b.yaml").write_text("b: 1\n")
        assert wait_until(lambda: len(store_states(env["db"], root) or ()) == 2, 10), out.read_text()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    text = out.read_text()
    assert f"watching {root} (Ctrl-C to stop)" in text
    assert "indexed 1 file" in text and "Traceback" not in text
    assert not lifecycle.DaemonFiles(env["state"], [str(root)]).pidfile.exists()


def _can_limit_inotify() -> bool:
    if not shutil.which("unshare"):
        return False
    probe = "echo 5 > /proc/sys/user/max_inotify_watches"
    return subprocess.run(["unshare", "-U", "-r", "sh", "-c", probe], capture_output=True, check=False).returncode == 0


@pytest.mark.skipif(not _can_limit_inotify(), reason="cannot create a user namespace with its own inotify limit")
def test_inotify_watch_limit_falls_back_to_polling(env: dict, daemons: list) -> None:
    """A real kernel limit (set in a private user namespace): 20 watches for 41 + 1 folders.

    Which way the limit shows depends on the watchdog version and the kernel: watching the big root
    fails at once (ENOSPC), or part of it is watched without a word and the first walk finds out
    (that path has its own test in test_monitor.py). Either way the big root ends up polled, each root
    that fell back says so in one line, and changes in both roots are indexed.
    """
    big, small = env["root"], env["tmp"] / "second"
    small.mkdir()
    for i in range(40):
        (big / f"run-{i:02d}").mkdir()
        (big / f"run-{i:02d}" / "config.yaml").write_text(f"i: {i}\n")
    prefix = ["unshare", "-U", "-r", "sh", "-c", 'echo 20 > /proc/sys/user/max_inotify_watches && exec "$@"', "sh"]
    d = start(daemons, env, roots=[big, small], prefix=prefix)

    def roots() -> dict[str, str]:
        return json.loads(_read(d.files.status) or "{}").get("roots", {})

    assert wait_until(lambda: len(store_states(env["db"], big) or ()) == 40, 15), d.log()
    assert wait_until(lambda: roots().get(str(big)) == "watching (polling)", 15), (roots(), d.log())
    assert roots()[str(small)] in ("watching (inotify)", "watching (polling)"), roots()
    # changes in folders inotify could not watch are still seen (polling every 2 s)
    (big / "run-39" / "config.yaml").write_text("i: 390\n")
    (small / "late.yaml").write_text("late: 1\n")
    assert wait_until(lambda: store_states(env["db"], big) == disk_states(big), 15), d.log()
    assert wait_until(lambda: len(store_states(env["db"], small) or ()) == 1, 15), d.log()
    modes = roots()
    d.signal(signal.SIGTERM)
    assert d.wait() == 0
    for root in (big, small):
        said = re.findall(rf"inotify watches ran out while watching {re.escape(str(root))}[ ;]", d.log())
        fell_back = modes[str(root)] == "watching (polling)"
        assert len(said) == (1 if fell_back else 0), (root, modes, d.log())


def test_a_status_check_holding_the_pidfile_lock_for_a_moment_does_not_refuse_a_start(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``daemon status`` (and stale-pidfile cleanup) lock the pidfile briefly; a daemon starting at that
    instant must wait it out, not report an indexer that is not there. One that holds it for good wins."""
    import fcntl
    from types import SimpleNamespace

    files = lifecycle.DaemonFiles(tmp_path / "state", [str(tmp_path)])
    files.folder.mkdir(parents=True)
    files.pidfile.write_text("12345\n")
    reader = os.open(files.pidfile, os.O_RDONLY)
    fcntl.flock(reader, fcntl.LOCK_SH)
    clock = FakeClock()
    let_go: list = []

    def sleep(seconds: float) -> None:  # the start found the lock held and waits: the status check lets go
        if not let_go:
            os.close(reader)
            let_go.append(clock())
        clock.advance(seconds)

    monkeypatch.setattr(lifecycle, "time", SimpleNamespace(monotonic=clock, sleep=sleep))
    lock = lifecycle.PidFile(files)
    lock.acquire()
    assert let_go, "the start never found the pidfile locked"
    assert files.pidfile.read_text().split()[0] == str(os.getpid())
    # a second start while this one holds the lock is refused, after the short wait
    t = clock()
    with pytest.raises(lifecycle.AlreadyRunning) as err:
        lifecycle.PidFile(files).acquire()
    assert err.value.pid == os.getpid() and clock() - t >= lifecycle.LOCK_PATIENCE_S
    lock.release()


def _cmdlines() -> list[str]:
    """Every process's argv as every local user can read it (``/proc/PID/cmdline``)."""
    out = []
    for p in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            out.append(p.read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            continue
    return out


def test_daemon_start_keeps_the_store_uri_out_of_every_argv(env: dict) -> None:
    # a store path that stands for a password: whatever the URI holds must not reach /proc/*/cmdline
    db = str(env["tmp"] / "S3cretPW%40x.db")
    from ednaquery.cli import main as ednaquery_main

    res = CliRunner().invoke(ednaquery_main, ["--store", db, "daemon", "start", "--debounce", "0.05",
                                              str(env["root"])])
    assert res.exit_code == 0, res.output
    pid = int(res.output.split("(pid ")[1].split(")")[0])
    try:
        lines = _cmdlines()
        assert any("indexer run" in c for c in lines)  # the daemon is there to be seen
        assert not [c for c in lines if "S3cretPW" in c]
        # ... and it uses that store all the same
        (env["root"] / "a.yaml").write_text("a: 1\n")
        assert wait_until(lambda: Path(db).exists() and bool(store_states(db, env["root"])), 15)
    finally:
        if lifecycle.pid_alive(pid):
            os.kill(pid, signal.SIGTERM)
            wait_until(lambda: not lifecycle.pid_alive(pid), 20)


def test_a_mongodb_password_reaches_the_daemon_in_its_environment_only(env: dict, monkeypatch) -> None:
    seen: dict = {}

    class Child:
        pid = 4242

        def __init__(self, cmd, **kw):
            seen.update(cmd=cmd, env=kw.get("env"))

        def poll(self):
            return 1

    monkeypatch.setattr(lifecycle.subprocess, "Popen", Child)
    uri = "mongodb://admin:S3cret%2FPW@db.example:27017/ednaquery"
    res = CliRunner().invoke(cli.daemon, ["start", "--store", uri, str(env["root"])])
    assert res.exit_code != 0  # the fake child "exited"
    assert not [a for a in seen["cmd"] if "S3cret" in a]
    assert seen["env"]["EDNAQUERY_STORE"] == uri
