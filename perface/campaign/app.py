"""The judging web app (Starlette on uvicorn) and ``serve``.

Routes (every one behind the token when the campaign has one: ``?token=`` or header ``X-PerFace-Token``):

* ``GET /``: the judging page (``?annotator=ID``, also ``PROLIFIC_PID`` / ``workerId``; without an id a short
  form asks for one). Plain HTML/CSS/JS from this package, nothing from a CDN.
* ``GET /api/next?annotator=ID``: the annotator's open assignments (shown + preloaded) and progress; see
  :meth:`perface.campaign.store.CampaignStore.next_assignments`.
* ``POST /api/judgments``: ``{"annotator", "assignment", "submission", "side": "left"|"right",
  "response_ms"}``; 201 with the stored judgment, 200 with the stored one for a retry of the same
  ``submission`` id; 4xx ``{"error"}`` and nothing written otherwise.
* ``GET /img/{id}``: an image of the campaign's tasks, by id (never by path); its real path is checked to be
  inside the root on every request. Anything else is a 404 JSON error; there is no listing.
* ``GET /static/annotate.js|annotate.css``, ``GET /api/health``.

Responses carry a Content-Security-Policy (only this origin's scripts, styles and images; no inline
script), ``X-Content-Type-Options: nosniff`` and ``Referrer-Policy: no-referrer`` (the token is in URLs).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hmac
import json
import math
import os
import re
import socket
import stat
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable
from urllib.parse import parse_qs, quote

from perface.campaign.config import CampaignConfig
from perface.campaign.store import CampaignStore
from perface.campaign.tasks import TaskSet, load_tasks
from perface.errors import CampaignError

__all__ = ["Campaign", "create_app", "prepare", "serve", "LOOPBACK_HOSTS"]

WEB_DIR = Path(__file__).with_name("web")
_STATIC = {"annotate.js": "text/javascript; charset=utf-8", "annotate.css": "text/css; charset=utf-8"}
_IMAGE_ID = re.compile(r"[0-9]{1,12}")
_SUBMISSION_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")
_SUBMISSION_FIELDS = ("annotator", "assignment", "submission", "side", "response_ms")
_MAX_BODY = 16 * 1024
_MAX_ANNOTATOR = 128
#: Memory for served image bytes.
_IMAGE_CACHE_BYTES = 256 * 1024 * 1024
#: Host names accepted by a server bound to loopback (guards against DNS rebinding).
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
#: Bad rows named in the start-up error before "... and N more".
_BAD_ROWS_SHOWN = 20


@dataclass
class Campaign:
    """A checked, opened campaign: its config, database and start-up summary."""

    config: CampaignConfig
    store: CampaignStore
    tasks: TaskSet
    summary: dict = field(default_factory=dict)


def prepare(config: CampaignConfig) -> Campaign:
    """Check the tasks and images, open (or create) the database and load the tasks into it.

    Raises:
        CampaignError: bad task rows (each listed: file:line, column, path, reason) unless
            ``config.skip_bad``; no usable triplet; unreadable files; a database that is not a campaign.
    """
    tasks = load_tasks(config.tasks, config.root, config.gold)
    if tasks.bad and not config.skip_bad:
        shown = "; ".join(str(b) for b in tasks.bad[:_BAD_ROWS_SHOWN])
        more = f"; ... and {len(tasks.bad) - _BAD_ROWS_SHOWN} more" if len(tasks.bad) > _BAD_ROWS_SHOWN else ""
        raise CampaignError(f"{len(tasks.bad)} task row(s) cannot be shown to annotators: {shown}{more}. Fix "
                            "those rows or images, or pass --skip-bad to start without them")
    if not tasks.triplets:
        raise CampaignError(f"{config.tasks}: no usable triplet to judge ({len(tasks.bad)} bad row(s))")
    store = CampaignStore(config.db, create=True)
    settings = {"tasks": Path(config.tasks).resolve(), "root": Path(config.root).resolve(),
                "judgments_per_triplet": config.judgments_per_triplet, "catch_rate": config.catch_rate,
                "gold_rate": config.gold_rate, "per_annotator": config.per_annotator,
                "gold": Path(config.gold).resolve() if config.gold else ""}
    synced = store.sync_tasks(tasks, settings)
    summary = {"db": str(config.db), "triplets": synced["triplets"], "gold": synced["gold"],
               "added": synced["added"], "inactive": synced["inactive"], "images": len(tasks.media_types),
               "bad_rows": [str(b) for b in tasks.bad], "duplicates": tasks.duplicates,
               "judgments_per_triplet": config.judgments_per_triplet, "catch_rate": config.catch_rate,
               "catch_block": config.catch_block, "gold_rate": config.gold_rate if synced["gold"] else 0.0,
               "per_annotator": config.per_annotator}
    return Campaign(config, store, tasks, summary)


def _clean_annotator(value: str | None) -> str | None:
    """The annotator id, stripped; None if absent. Raises ValueError if too long or has control characters."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if len(value) > _MAX_ANNOTATOR:
        raise ValueError(f"annotator id is longer than {_MAX_ANNOTATOR} characters")
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Cs") for ch in value):
        raise ValueError("annotator id contains control characters")
    return value


class _ImageCache:
    """Serves campaign images from inside the root only, keeping recently served bytes in memory.

    Every request opens the file and checks the real path of *what was opened* (``/proc/self/fd`` on Linux,
    ``os.path.realpath`` elsewhere) against the root's real path, so a file swapped for a symbolic link
    pointing outside after the start is refused. Bytes are reused while size and modification time match;
    face images are small (tens of KB), so this keeps image requests off any thread pool. Oldest entries are
    dropped past ``max_bytes``.
    """

    _PROC_FD = Path("/proc/self/fd")

    def __init__(self, root_real: Path, max_bytes: int):
        self.root = root_real
        self.prefix = str(root_real).rstrip(os.sep) + os.sep
        self.max_bytes = max_bytes
        self.size = 0
        self.items: dict[str, tuple[int, int, bytes]] = {}
        self.proc = self._PROC_FD.is_dir()

    def get(self, rel: str) -> bytes | None:
        """The bytes of ``root / rel``, or None if it is not a regular file inside the root (any more)."""
        try:
            fd = os.open(self.root / rel, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            return None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                return None
            real = os.readlink(f"/proc/self/fd/{fd}") if self.proc else os.path.realpath(self.root / rel)
            if not real.startswith(self.prefix):
                return None
            hit = self.items.get(real)
            if hit is not None and hit[:2] == (st.st_size, st.st_mtime_ns):
                return hit[2]
            with os.fdopen(fd, "rb", closefd=False) as f:
                data = f.read()
        except OSError:
            return None
        finally:
            os.close(fd)
        if hit is not None:
            self.size -= len(hit[2])
            del self.items[real]
        if len(data) <= self.max_bytes:
            while self.items and self.size + len(data) > self.max_bytes:
                old = next(iter(self.items))
                self.size -= len(self.items.pop(old)[2])
            self.items[real] = (st.st_size, st.st_mtime_ns, data)
            self.size += len(data)
        return data


class _Guard:
    """Pure ASGI middleware: token and Host checks, body size limit, security headers on every response."""

    def __init__(self, app, token: str | None, allowed_hosts: tuple[str, ...], frame_ancestors: str):
        self.app = app
        self.token = token.encode() if token else None
        self.allowed_hosts = {h.lower() for h in allowed_hosts}
        csp = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
               f"form-action 'self'; base-uri 'none'; frame-ancestors {frame_ancestors}")
        self.headers = [(b"content-security-policy", csp.encode()), (b"x-content-type-options", b"nosniff"),
                        (b"referrer-policy", b"no-referrer"), (b"cross-origin-resource-policy", b"same-origin")]
        if frame_ancestors.strip() == "'none'":
            self.headers.append((b"x-frame-options", b"DENY"))

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])

        async def send_secured(message):
            if message["type"] == "http.response.start":
                message = dict(message)
                message["headers"] = list(message.get("headers") or []) + self.headers
            await send(message)

        if self.allowed_hosts:
            host = headers.get(b"host", b"").decode("latin-1").lower()
            name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
            if name not in self.allowed_hosts:
                return await _json_asgi(send_secured, 400, f"host {host!r} is not served here (the server is bound "
                                        "to loopback; use http://127.0.0.1:PORT/ or pass --allow-host)")
        if self.token is not None and not self._authorised(scope, headers):
            return await _json_asgi(send_secured, 401, "this campaign needs its access token: open the link you "
                                    "were given (it ends with ?token=...) or send header X-PerFace-Token")
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > _MAX_BODY):
            return await _json_asgi(send_secured, 413, f"request body larger than {_MAX_BODY} bytes")
        await self.app(scope, receive, send_secured)

    def _authorised(self, scope, headers: dict) -> bool:
        given = headers.get(b"x-perface-token")
        if given is None:
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            values = query.get("token") or [""]
            given = values[0].encode("latin-1", "replace")
        return hmac.compare_digest(given, self.token)


async def _json_asgi(send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"cache-control", b"no-store")]})
    await send({"type": "http.response.body", "body": body})


def _parse_submission(raw: bytes) -> tuple[dict | None, str | None]:
    """The JSON body of ``POST /api/judgments`` checked field by field: ``(body, None)`` or ``(None, problem)``."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        return None, f"the body is not valid JSON ({exc})"
    if not isinstance(body, dict):
        return None, "the body must be a JSON object {annotator, assignment, submission, side, response_ms}"
    unknown = sorted(set(body) - set(_SUBMISSION_FIELDS))
    missing = [k for k in _SUBMISSION_FIELDS[:4] if k not in body]
    if unknown or missing:
        return None, (f"unknown field(s) {', '.join(unknown)}" if unknown else f"missing field(s) {', '.join(missing)}")
    if not isinstance(body["annotator"], str) or not 1 <= len(body["annotator"]) <= _MAX_ANNOTATOR:
        return None, f"annotator must be a string of 1 to {_MAX_ANNOTATOR} characters"
    a = body["assignment"]
    if isinstance(a, bool) or not isinstance(a, int) or a <= 0:
        return None, "assignment must be a positive integer (the id from /api/next)"
    if not isinstance(body["submission"], str) or not _SUBMISSION_ID.fullmatch(body["submission"]):
        return None, "submission must be 8 to 64 characters of A-Z, a-z, 0-9, '_' or '-' (a new id per answer)"
    if body["side"] not in ("left", "right"):
        return None, "side must be 'left' or 'right'"
    ms = body.get("response_ms")
    if ms is not None and (isinstance(ms, bool) or not isinstance(ms, (int, float)) or not math.isfinite(ms)
                           or not 0 <= ms <= 86_400_000):
        return None, "response_ms must be a number of milliseconds between 0 and 86400000 (or null)"
    return body, None


def create_app(config: CampaignConfig | Campaign):
    """The ASGI app of a campaign (Starlette). Accepts a config (checked and opened with :func:`prepare`) or an
    already prepared :class:`Campaign`; the campaign is at ``app.state.campaign``.

    Raises:
        CampaignError: as :func:`prepare`, or the web extra is not installed (``pip install 'perface[annotate]'``).
    """
    try:
        import jinja2
        from starlette.applications import Starlette
        from starlette.exceptions import HTTPException
        from starlette.responses import HTMLResponse, JSONResponse, Response
        from starlette.routing import Route
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise CampaignError(f"perface annotate needs the web extra ({exc}): pip install 'perface[annotate]'") from None

    campaign = config if isinstance(config, Campaign) else prepare(config)
    cfg, store = campaign.config, campaign.store
    root_real = Path(os.path.realpath(cfg.root))
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(WEB_DIR), autoescape=True, undefined=jinja2.StrictUndefined)
    page_template = env.get_template("index.html")
    static = {name: (WEB_DIR / name).read_bytes() for name in _STATIC}
    no_store = {"Cache-Control": "no-store"}
    images = store.images()  # fixed while serving (catch trials reuse task images)
    cache = _ImageCache(root_real, _IMAGE_CACHE_BYTES)

    def error(status: int, message: str, **extra) -> JSONResponse:
        return JSONResponse({"error": message, **extra}, status_code=status, headers=no_store)

    async def http_error(request, exc):
        return error(exc.status_code, "not found" if exc.status_code == 404 else str(exc.detail))

    async def server_error(request, exc):  # nothing was acknowledged: the client may retry the same submission
        return error(500, f"internal error ({type(exc).__name__}); retry the request")

    def annotator_or_error(value: str | None):
        try:
            annotator = _clean_annotator(value)
        except ValueError as exc:
            return None, error(400, str(exc))
        if annotator is None:
            return None, error(400, "missing annotator id (?annotator=ID)")
        return annotator, None

    async def page(request):
        q = request.query_params
        problem = ""
        annotator = None
        try:
            for key in ("annotator", "PROLIFIC_PID", "workerId"):
                annotator = _clean_annotator(q.get(key))
                if annotator:
                    break
        except ValueError as exc:
            problem, annotator = str(exc), None
        html = page_template.render(
            title=cfg.title, instructions=cfg.instructions, annotator=annotator or "", problem=problem,
            token=cfg.token or "", token_query=f"?token={quote(cfg.token, safe='')}" if cfg.token else "",
            preview=q.get("assignmentId") == "ASSIGNMENT_ID_NOT_AVAILABLE",
            completion_url=cfg.completion_url or "", per_annotator=cfg.per_annotator)
        return HTMLResponse(html, status_code=400 if problem else 200, headers=no_store)

    async def static_file(request):
        name = request.path_params["name"]
        if name not in static:
            return error(404, "not found")
        return Response(static[name], media_type=_STATIC[name], headers={"Cache-Control": "no-cache"})

    async def health(request):
        return JSONResponse({"ok": True, "triplets": campaign.summary.get("triplets", 0)}, headers=no_store)

    # The API routes are coroutines that wait for the store's writer thread (group commit) without holding a
    # worker thread each.
    async def next_assignments(request):
        annotator, problem = annotator_or_error(request.query_params.get("annotator"))
        if problem is not None:
            return problem
        out = await asyncio.wrap_future(store.next_assignments_async(
            annotator, cfg, request.headers.get("user-agent", "")[:512]))
        for a in out["assignments"]:
            for key in ("anchor", "left", "right"):
                a[key] = f"/img/{a[key]}"
        if out["complete"] and cfg.completion_url:
            out["completion_url"] = cfg.completion_url.replace("{code}", quote(out["completion_code"]))
        return JSONResponse(out, headers=no_store)

    async def submit(request):
        body, problem = _parse_submission(await request.body())
        if problem is not None:
            return error(400, f"invalid request: {problem}")
        annotator, problem = annotator_or_error(body["annotator"])
        if problem is not None:
            return problem
        result = await asyncio.wrap_future(store.submit_async(
            annotator, body["assignment"], body["submission"], body["side"], body.get("response_ms"), cfg,
            request.headers.get("user-agent", "")[:512]))
        payload = dict(result.body)
        if payload.get("judgment"):
            payload["judgment"] = {k: v for k, v in payload["judgment"].items() if k != "kind"}
        return JSONResponse(payload, status_code=result.status, headers=no_store)

    async def image(request):
        image_id = request.path_params["image_id"]
        if not _IMAGE_ID.fullmatch(image_id):
            return error(404, "not found")
        row = images.get(int(image_id))
        if row is None:
            return error(404, "not found")
        data = cache.get(row[0])  # opened and checked inside the root on every request
        if data is None:
            return error(404, "not found")
        return Response(data, media_type=row[1], headers={"Cache-Control": "private, max-age=86400"})

    @contextlib.asynccontextmanager
    async def lifespan(app):
        store.attach_loop()  # transactions on the loop thread from now on (see CampaignStore.attach_loop)
        try:
            yield
        finally:
            await store.detach_loop()

    app = Starlette(lifespan=lifespan, routes=[
        Route("/", page, methods=["GET"]),
        Route("/static/{name}", static_file, methods=["GET"]),
        Route("/api/health", health, methods=["GET"]),
        Route("/api/next", next_assignments, methods=["GET"]),
        Route("/api/judgments", submit, methods=["POST"]),
        Route("/img/{image_id}", image, methods=["GET"]),
    ], exception_handlers={HTTPException: http_error, Exception: server_error})
    app.state.campaign = campaign

    guarded = _Guard(app, cfg.token, cfg.allowed_hosts, cfg.frame_ancestors)
    guarded.state = app.state  # so callers can reach the campaign from the ASGI app
    return guarded


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: any free port).

    Raises:
        CampaignError: the address cannot be bound (in use, not this machine's, no permission).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP (not 0): asyncio sets TCP_NODELAY on accepted sockets only then; without it Nagle's
    # algorithm and delayed ACKs add ~40 ms to every response written in two parts (headers, body).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise CampaignError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); pass another --port or "
                            "--host") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve(config: CampaignConfig, host: str = "127.0.0.1", port: int = 8000, *,
          on_start: Callable[[dict], None] | None = None,
          log_level: str = "warning") -> None:
    """Check, open and serve a campaign until interrupted (Ctrl-C / SIGTERM end it cleanly).

    Args:
        host: Interface to bind; loopback by default. Bound to loopback, only requests whose Host header
            names loopback (or one of ``config.allowed_hosts``) are answered.
        on_start: Called with the start-up summary plus ``url`` once the port is bound, before serving.

    Raises:
        CampaignError: as :func:`prepare`, or the port cannot be bound.
    """
    try:
        import uvicorn
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise CampaignError(f"perface annotate needs the web extra ({exc}): pip install 'perface[annotate]'") from None

    if host in ("127.0.0.1", "localhost", "::1"):
        config = dataclasses.replace(config, allowed_hosts=tuple(LOOPBACK_HOSTS) + tuple(config.allowed_hosts))
    campaign = prepare(config)
    app = create_app(campaign)
    sock = listen(host, port)
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{bound}/"
    if config.token:
        url += f"?token={quote(config.token, safe='')}&annotator=ID"
    else:
        url += "?annotator=ID"
    if on_start is not None:
        on_start({**campaign.summary, "url": url, "host": host, "port": bound})
    server = uvicorn.Server(uvicorn.Config(app, log_level=log_level, access_log=False, server_header=False,
                                           timeout_graceful_shutdown=5))
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        campaign.store.close()
