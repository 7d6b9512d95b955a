"""Serving the app: bind (127.0.0.1 unless told), say where, warn when others can reach it, run uvicorn."""
from __future__ import annotations

import ipaddress
import socket
import sys
from collections.abc import Callable
from typing import Any

from ednaquery.errors import UsageError

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "exposure_warning", "serve"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765


def exposure_warning(host: str) -> str | None:
    """The warning to print when ``host`` is reachable from other machines (None for loopback)."""
    if host == "localhost":
        return None
    try:
        if ipaddress.ip_address(host).is_loopback:
            return None
    except ValueError:
        pass
    return (f"warning: listening on {host}: anyone who can reach this machine can read the whole index and "
            "every indexed run folder's files, and edit tags and notes; there is no login (the default "
            f"--host {DEFAULT_HOST} keeps it to this machine)")


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; "
                         "pick another --port (0: any free one)") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def serve(index: Any, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, *, store_uri: str | None = None,
          say: Callable[[str], None] | None = None) -> None:
    """Serve the workbench for ``index`` until interrupted; prints the URL (and any warning) first."""
    try:
        import uvicorn

        from ednaquery.ui.app import create_app
    except ImportError as exc:
        raise UsageError(f"ednaquery ui needs the 'ui' extra ({exc.name} is missing): "
                         "pip install 'ednaquery[ui]'") from None
    say = say or (lambda line: print(line, file=sys.stderr, flush=True))
    warning = exposure_warning(host)
    if warning:
        say(warning)
    sock = _bind(host, port)
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    say(f"ednaquery ui: http://{shown}:{bound}/   (Ctrl-C stops it)")
    config = uvicorn.Config(create_app(index, store_uri=store_uri, host=host), log_level="warning", access_log=False,
                            lifespan="off")
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
