"""The ASGI app of ``ednaquery ui``: page shells, static assets and the JSON API they read.

Pages (``/``, ``/run/{id}``, ``/compare``) are static HTML whose scripts call the endpoints
below; a script can call them too (Datasette's model). Everything goes through the public
:class:`ednaquery.Index`; nothing here opens the store. Nothing writes but tags and notes, and
nothing runs code. An ednaquery error (a store that cannot be reached, a query that timed out) is a
JSON ``{"error": ...}`` with passwords masked, never a traceback.
"""
from __future__ import annotations

import os
import threading
import time
from importlib.resources import files
from typing import Any

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ednaquery.errors import AmbiguousId, EdnaError, NotFound, QuerySyntaxError, StoreUnavailable, UsageError
from ednaquery.masking import uri_passwords
from ednaquery.ui import files as runfiles
from ednaquery.ui.payload import cleaned, config_diff, record_json, series_json

__all__ = ["create_app"]


STATIC = str(files("ednaquery.ui") / "static")
#: rows a search returns when the page does not say
DEFAULT_LIMIT = 50
MAX_LIMIT = 5000
#: runs one overlay or diff takes at most
MAX_COMPARE = 200
#: seconds the key catalogue (autocomplete) is served before it is read again (in the background)
KEYS_TTL_S = 10.0
#: what every response may load: only this server's own scripts, styles and images
CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; "
       "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
#: what a file from a run folder may do when opened directly: nothing
FILE_CSP = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; sandbox"


class _Headers(BaseHTTPMiddleware):
    """Security headers on every response (a file response keeps its stricter policy)."""

    async def dispatch(self, request: Request, call_next: Any) -> Response:
        response = await call_next(request)
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        return response


class _Catalogue:
    """The index's keys for autocomplete, read at most every :data:`KEYS_TTL_S`.

    Reading every key of a big index takes a while (its leaves are scanned), so a fresh read runs as
    a background task after a response (the search page's, or a keystroke's, which gets the last
    catalogue at once); only a request that finds no catalogue at all waits for one. It reads through
    :meth:`ednaquery.Index.reopen` (a store connection of its own, opened and closed per read), so the
    searches answered meanwhile do not wait for it.
    """

    def __init__(self, index: Any) -> None:
        self.index = index
        self._stats: list[Any] | None = None
        self._at = -KEYS_TTL_S
        self._lock = threading.Lock()

    def due(self) -> bool:
        """True when the catalogue is missing or older than :data:`KEYS_TTL_S`."""
        return time.monotonic() - self._at >= KEYS_TTL_S

    def refresh(self, *, wait: bool = False) -> None:
        """Read the catalogue if it is due (one read at a time; without ``wait``, skip if one is running)."""
        if not self._lock.acquire(blocking=wait):
            return
        try:
            if self.due():
                with self.index.reopen() as own:
                    stats = own.keys(None)
                self._stats, self._at = stats, time.monotonic()
        finally:
            self._lock.release()

    def stats(self) -> list[Any]:
        """The last catalogue read (reading one first when there is none yet)."""
        if self._stats is None:
            self.refresh(wait=True)
        return self._stats or []

    def task(self) -> BackgroundTask | None:
        """A background refresh to run after a response, when one is due."""
        return BackgroundTask(self.refresh) if self.due() else None


def _int(text: str | None, default: int, lo: int, hi: int) -> int:
    try:
        n = int(text) if text not in (None, "") else default
    except ValueError:
        n = default
    return max(lo, min(hi, n))


def _ids(request: Request) -> list[str]:
    raw = ",".join(request.query_params.getlist("ids"))
    return [i for i in dict.fromkeys(s.strip() for s in raw.split(",")) if i][:MAX_COMPARE]


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


def create_app(index: Any, *, store_uri: str | None = None, host: str = "127.0.0.1") -> Starlette:
    """The app over ``index`` (an :class:`ednaquery.Index`); ``store_uri``'s passwords never reach a page.

    Requests must name this server by a loopback name or by ``host`` in their Host header (a page on a
    DNS-rebinding domain reaching 127.0.0.1 gets 400); a wildcard ``host`` (0.0.0.0, ::) accepts any.
    """
    secrets = uri_passwords(store_uri)
    catalogue = _Catalogue(index)

    def ok(value: Any) -> JSONResponse:
        return JSONResponse(cleaned(value, secrets))

    async def edna_error(request: Request, exc: Exception) -> Response:
        status = 503 if isinstance(exc, StoreUnavailable) else 400
        return JSONResponse({"error": cleaned(str(exc), secrets)}, status_code=status)

    def page(name: str) -> Any:
        async def endpoint(request: Request) -> Response:
            # the key catalogue is read after the page is sent, not on the first keystroke
            return FileResponse(os.path.join(STATIC, name), media_type="text/html", background=catalogue.task())
        return endpoint

    def api_find(request: Request) -> Response:
        """``/api/find?q=...&sort=-KEY&limit=N&kind=run``: rows of ``ix.find``, and the query's columns."""
        q = request.query_params.get("q", "")
        sort = [s for s in request.query_params.getlist("sort") if s]
        kind = request.query_params.get("kind") or None
        limit = _int(request.query_params.get("limit"), DEFAULT_LIMIT, 1, MAX_LIMIT)
        try:
            results = index.find(q, sort=sort or None, limit=limit, kind=kind)
            rows = [record_json(r, with_config=request.query_params.get("config") == "1") for r in results]
        except QuerySyntaxError as exc:
            return _error(400, str(exc), query=exc.query, position=exc.pos, length=exc.length)
        except UsageError as exc:  # a bad key or option; a store that fails goes to edna_error
            return _error(400, str(exc))
        # the names the records' values carry (the query's keys); the query's labels when nothing matched
        columns = list(dict.fromkeys(k for r in rows for k in (r.get("values") or {})))
        if not columns:
            columns = [c.label for c in getattr(results, "columns", None) or ()]
        return ok({"query": q, "sort": sort, "limit": limit, "columns": columns, "rows": rows})

    def api_keys(request: Request) -> Response:
        """``/api/keys?prefix=opt``: keys of the catalogue for autocomplete, most common first."""
        prefix = request.query_params.get("prefix", "")
        limit = _int(request.query_params.get("limit"), 30, 1, 1000)
        out = []
        for stat in catalogue.stats():
            key = _key_text(stat)
            if prefix and not (key.startswith(prefix) or f".{prefix}" in key):
                continue
            out.append({"key": key, "count": getattr(stat, "count", None)})
        out.sort(key=lambda k: (-(k["count"] or 0), k["key"]))
        response = ok({"prefix": prefix, "keys": out[:limit]})
        response.background = catalogue.task()
        return response

    def api_run(request: Request) -> Response:
        """``/api/run/{id}``: the whole record, the run folder's files, and which are images."""
        try:
            record = index.get(request.path_params["doc_id"])
        except (NotFound, AmbiguousId) as exc:
            return _error(404, str(exc))
        out = record_json(record)
        folder = runfiles.run_folder(out.get("kind"), out.get("paths"))
        listed = runfiles.list_files(folder) if folder else []
        out["files"] = [{"path": f.path, "size": f.size, "image": f.image} for f in listed]
        out["folder"] = folder
        out["config_indexed"] = bool(out.get("config_id")) and _exists(index, out["config_id"])
        return ok(out)

    def api_runs(request: Request) -> Response:
        """``/api/runs?ids=a,b,c``: those records, in that order (unknown ids in ``missing``)."""
        rows, missing = [], []
        for doc_id in _ids(request):
            try:
                rows.append(record_json(index.get(doc_id)))
            except (NotFound, AmbiguousId):
                missing.append(doc_id)
        return ok({"rows": rows, "missing": missing})

    def api_diff(request: Request) -> Response:
        """``/api/diff?ids=a,b,c``: only the config keys (and metrics) whose values differ."""
        records = []
        for doc_id in _ids(request):
            try:
                records.append(index.get(doc_id))
            except (NotFound, AmbiguousId) as exc:
                return _error(404, str(exc))
        return ok({"ids": [r.id for r in records], "rows": config_diff(records) if len(records) > 1 else []})

    def api_series(request: Request) -> Response:
        """``/api/series?ids=a,b&metric=val_acc``: per-epoch/step values from the index."""
        ids = _ids(request)
        metrics = [m for m in request.query_params.getlist("metric") if m] or None
        if not ids:
            return ok({"runs": {}})
        try:
            points = index.series_points(ids, metrics)
        except (NotFound, AmbiguousId) as exc:
            return _error(404, str(exc))
        return ok({"runs": series_json(p._asdict() for p in points)})

    def api_file(request: Request) -> Response:
        """``/api/file/{id}/{path}``: a file from that run's folder; anything else is 404."""
        try:
            record = index.get(request.path_params["doc_id"])
            folder = runfiles.run_folder(record.kind, record.paths)
            if folder is None:
                raise runfiles.FileRefused("no folder")
            real = runfiles.resolve(folder, request.path_params["path"])
        except (NotFound, AmbiguousId, runfiles.FileRefused):
            return _error(404, "no such file in an indexed run folder")
        ext = os.path.splitext(real)[1].lower()
        media = runfiles.IMAGE_TYPES.get(ext, "text/plain; charset=utf-8")
        return FileResponse(real, media_type=media, headers={"Content-Security-Policy": FILE_CSP})

    def api_status(request: Request) -> Response:
        """``/api/status``: how many configs and runs are indexed (a cheap check for scripts)."""
        return ok({"runs": index.count("kind=run"), "documents": index.count("")})

    async def api_annotate(request: Request) -> Response:
        """``POST /api/annotate/{id}`` with JSON ``{"tags": ["+new", "-old"], "note": "text"}``: the one write.

        Only from this server's own pages: a JSON body (a cross-site form cannot send one without a
        preflight this app never answers) and, when the browser sends one, an Origin of this host.
        """
        if not request.headers.get("content-type", "").startswith("application/json") or not _same_origin(request):
            return _error(403, "tags and notes are edited from the ui's own pages")
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "the body is not JSON")
        if not isinstance(body, dict) or not (set(body) & {"tags", "note"}) or set(body) - {"tags", "note"}:
            return _error(400, 'send {"tags": ["+TAG", "-TAG"]} and/or {"note": "text"}')
        tags, note = body.get("tags"), body.get("note")
        if (tags is not None and not (isinstance(tags, list) and all(isinstance(t, str) for t in tags))) or \
                (note is not None and not isinstance(note, str)):
            return _error(400, "tags is a list of +TAG/-TAG strings, note is a string")
        doc_id = request.path_params["doc_id"]
        try:
            await run_in_threadpool(_annotate, index, doc_id, tags, note)
            record = await run_in_threadpool(index.get, doc_id)
        except (NotFound, AmbiguousId) as exc:
            return _error(404, str(exc))
        except UsageError as exc:  # a bad tag, a note too long, a record that is not on disk
            return _error(400, str(exc))
        return ok(record_json(record, with_config=False))

    routes = [
        Route("/", page("search.html")),
        Route("/run/{doc_id}", page("run.html")),
        Route("/compare", page("compare.html")),
        Route("/api/find", api_find),
        Route("/api/keys", api_keys),
        Route("/api/run/{doc_id}", api_run),
        Route("/api/runs", api_runs),
        Route("/api/diff", api_diff),
        Route("/api/series", api_series),
        Route("/api/status", api_status),
        Route("/api/file/{doc_id}/{path:path}", api_file),
        Route("/api/annotate/{doc_id}", api_annotate, methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    return Starlette(routes=routes, middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts(host)),
                                                Middleware(_Headers)],
                     exception_handlers={EdnaError: edna_error})


#: the Host header names a loopback server answers to
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1", "[::1]")


def allowed_hosts(host: str) -> list[str]:
    """Host header values the app accepts when bound to ``host``: the loopback names and ``host``
    itself; any (``*``) when it listens on every interface, which ``ednaquery ui`` warns about."""
    if host in ("0.0.0.0", "::", ""):
        return ["*"]
    return list(dict.fromkeys([*LOOPBACK_NAMES, host]))


def _exists(index: Any, doc_id: str) -> bool:
    """True when ``doc_id`` is a document of the index (a run's config may live only inside its run)."""
    try:
        index.get(doc_id)
    except (NotFound, AmbiguousId):
        return False
    return True


def _same_origin(request: Request) -> bool:
    """True unless the browser says the request comes from a page of another origin."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    return origin == f"{request.url.scheme}://{request.headers.get('host', '')}"


def _annotate(index: Any, doc_id: str, tags: list[str] | None, note: str | None) -> None:
    """``+TAG``/``-TAG`` changes and/or a note, the one write the ui offers, through the public API
    (:meth:`ednaquery.api.Index.tag` / :meth:`~ednaquery.api.Index.note`: the sidecar beside the run or
    config first, the source of truth, then the index)."""
    if tags:
        index.tag(doc_id, *tags)
    if note is not None:
        index.note(doc_id, note)


def _key_text(stat: Any) -> str:
    """A catalogue key (:class:`ednaquery.store.base.KeyStat`) as the dotted text a query uses."""
    return ".".join(stat.path)
