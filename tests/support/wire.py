"""The nx-27017 MongoDB wire-protocol server the MongoDB tests talk to over TCP (no mongod can run here).

``start_server`` starts one on 127.0.0.1 and waits until it answers a ping; it returns why not,
in one line, when it cannot (tests then skip with that reason). The session-wide server is the
``wire_uri`` fixture in tests/conftest.py; tests that must stop or restart a server start their own.
"""
from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["NOT_INSTALLED", "free_port", "server_binary", "start_server", "stop", "with_database"]

NOT_INSTALLED = "the nx-27017 MongoDB wire-protocol server is not installed (pip install nx-27017)"


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on (at the moment of asking)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_binary() -> str | None:
    """The ``nx-27017`` executable beside this Python (the venv's), else on PATH; None if absent."""
    here = Path(sys.executable).with_name("nx-27017")
    return str(here) if here.exists() else shutil.which("nx-27017")


def with_database(uri: str, database: str) -> str:
    """The same server's URI naming another database (tests keep their data apart on a shared server)."""
    return uri.rsplit("/", 1)[0] + "/" + database


def start_server(workdir: Path, *, db: str = "memory", port: int | None = None, log_name: str = "server.log",
                 database: str = "ednaquery_wire") -> tuple[subprocess.Popen | None, str, str]:
    """Start ``nx-27017 --db DB`` (``memory``, or a file that outlives restarts) and wait for a ping.

    Returns (process, uri, "") or (None, "", why it could not start).
    """
    exe = server_binary()
    if exe is None:
        return None, "", NOT_INSTALLED
    from pymongo import MongoClient
    from pymongo.errors import PyMongoError

    port = free_port() if port is None else port
    log = workdir / log_name
    cmd = [exe, "--db", db, "--host", "127.0.0.1", "-p", str(port),
           "--log-file", str(log), "--pid-file", str(workdir / "server.pid")]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    uri = f"mongodb://127.0.0.1:{port}/{database}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with MongoClient(uri, serverSelectionTimeoutMS=500) as c:
                c.admin.command("ping")
            return proc, uri, ""
        except PyMongoError:
            time.sleep(0.1)
    code = proc.poll()
    stop(proc)
    tail = log.read_text(errors="replace")[-300:].strip() if log.exists() else ""
    return None, "", (f"nx-27017 did not answer a ping on 127.0.0.1:{port} within 20 s "
                      f"(exit status {code}): {tail}")


def stop(proc: subprocess.Popen) -> None:
    """Stop a server cleanly (SIGTERM), killing it if it does not exit within 10 s."""
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
