"""The console server: ground control's HTTP + WebSocket API and the two console pages, on a loopback port,
inside ground control's own event loop (aiohttp's embedding API: no thread, no signal handling of its own).

The API is documented in docs/console-api.md. Every action goes through `GroundControl` (commands, alarm
actions) or the `InstructorDesk` (faults, clock, bookmarks), so the command book, the archive and the audit
log see it. Two roles, two tokens: an operator gets 403 from every instructor endpoint and never receives
ground truth on the live stream.
"""

import asyncio
import contextlib
import json
import secrets
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import structlog
from aiohttp import WSMsgType, web

from lunar_gs.protocols.nodes import FAR_SIDE_NODES
from lunar_gs.protocols.telemetry import flatten_housekeeping
from lunar_gs.services.ground_control.alarms import AlarmActionError
from lunar_gs.services.ground_control.console.dictionary import build_dictionary
from lunar_gs.services.ground_control.console.instructor_desk import DeskError, InstructorDesk
from lunar_gs.services.ground_control.service import CommandRefused, GroundControl

STATIC_DIR = Path(__file__).parent / "static"
HISTORY_LIMIT_MAX = 20_000
FRAMES_PER_S = 50
FRAME_GAP_S = 1.0 / FRAMES_PER_S
"""The live stream's pace under load: one frame per packet at 1,000 packets a second made five browsers
use more CPU than two cores have (benchmarks/console.py); 20 ms between frames keeps the added wait small."""
BY_MAX = 64
FAR_SIDE_NAMES = frozenset(str(n) for n in FAR_SIDE_NODES)
STALE_PERIODS = 3.0
"""A parameter is stale once no packet came for this many idle housekeeping periods (mission time)."""


class Role(StrEnum):
    OPERATOR = "operator"
    INSTRUCTOR = "instructor"


@dataclass(frozen=True)
class RoleTokens:
    operator: str
    instructor: str

    @classmethod
    def generate(cls, operator: str | None = None, instructor: str | None = None) -> "RoleTokens":
        """The given tokens, or new random ones (printed once by whoever starts the console)."""
        tokens = cls(operator or secrets.token_urlsafe(18), instructor or secrets.token_urlsafe(18))
        if tokens.operator == tokens.instructor:
            raise ValueError("the operator and instructor tokens must differ")
        return tokens

    def role_of(self, token: str | None) -> Role | None:
        if not token:
            return None
        if secrets.compare_digest(token, self.instructor):
            return Role.INSTRUCTOR
        if secrets.compare_digest(token, self.operator):
            return Role.OPERATOR
        return None


def _error(status: int, message: str, field: str | None = None) -> web.Response:
    return web.json_response({"error": message, "field": field}, status=status)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(data, default=str), status=status, content_type="application/json")


def _number(query: dict[str, str] | Any, name: str) -> float | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    try:
        return float(raw)
    except ValueError:
        raise web.HTTPBadRequest(text=json.dumps({"error": f"{name} must be a number", "field": name}),
                                 content_type="application/json") from None


class ConsoleServer:
    """Reusable, not re-entrant: `async with ConsoleServer(...) as server:` serves until the block ends."""

    def __init__(self, gc: GroundControl, desk: InstructorDesk, tokens: RoleTokens, *, port: int,
                 host: str = "127.0.0.1") -> None:
        self.gc = gc
        self.desk = desk
        self.tokens = tokens
        self.host = host
        self.requested_port = port
        self.port = port
        self.log = gc.runtime.log.bind(part="console")
        self.stale_after_s = STALE_PERIODS * gc.profile.timing.idle_hk_period_s
        self._dictionary = build_dictionary(gc.topics.mission, gc.profile, self.stale_after_s)
        self._runner: web.AppRunner | None = None
        self._sockets: set[web.WebSocketResponse] = set()
        self.app = self._build_app()

    # -- lifecycle --------------------------------------------------------------------------------------------
    async def __aenter__(self) -> "ConsoleServer":
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.requested_port)
        await site.start()
        server = site._server  # aiohttp keeps the listening sockets there; port 0 needs the real one
        if server is not None and getattr(server, "sockets", None):
            self.port = server.sockets[0].getsockname()[1]
        self.log.info("console_ready", port=self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        for ws in list(self._sockets):
            with contextlib.suppress(Exception):
                await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def login_url(self, role: Role) -> str:
        token = self.tokens.instructor if role is Role.INSTRUCTOR else self.tokens.operator
        return f"{self.base_url}/login?token={token}"

    @property
    def cookie_name(self) -> str:
        """Per port: cookies ignore ports, and two missions' consoles may run on one host."""
        return f"lgs_session_{self.port}"

    # -- routing and roles ------------------------------------------------------------------------------------
    def _build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._auth], client_max_size=64 * 1024)
        r = app.router
        r.add_get("/", self._index)
        r.add_get("/login", self._login)
        r.add_get("/operator", self._page("operator.html"))
        r.add_get("/instructor", self._page("instructor.html"))
        if STATIC_DIR.exists():
            r.add_static("/static", STATIC_DIR, follow_symlinks=False)
        r.add_get("/api/v1/dictionary", self._get_dictionary)
        r.add_get("/api/v1/latest", self._get_latest)
        r.add_get("/api/v1/history", self._get_history)
        r.add_get("/api/v1/events", self._get_events)
        r.add_get("/api/v1/live", self._live)
        r.add_get("/api/v1/alarms", self._get_alarms)
        r.add_post("/api/v1/alarms/{name}/{action}", self._post_alarm)
        r.add_get("/api/v1/commands", self._get_commands)
        r.add_post("/api/v1/commands", self._post_command)
        r.add_get("/api/v1/clock", self._get_clock)
        r.add_get("/api/v1/link", self._get_link)
        r.add_get("/api/v1/audit", self._get_audit)
        r.add_get("/api/v1/instructor/faults/catalogue", self._get_catalogue)
        r.add_get("/api/v1/instructor/faults/active", self._get_active)
        r.add_post("/api/v1/instructor/faults", self._post_fault)
        r.add_delete("/api/v1/instructor/faults/{fault_id}", self._delete_fault)
        r.add_get("/api/v1/instructor/truth", self._get_truth)
        r.add_post("/api/v1/instructor/clock", self._post_clock)
        r.add_get("/api/v1/instructor/bookmarks", self._get_bookmarks)
        r.add_post("/api/v1/instructor/bookmarks", self._post_bookmark)
        return app

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        path = request.path
        if path in ("/", "/login") or path.startswith("/static/"):
            return await handler(request)
        header = request.headers.get("Authorization", "")
        token = header[7:] if header.startswith("Bearer ") else request.cookies.get(self.cookie_name)
        role = self.tokens.role_of(token)
        if role is None:
            return _error(401, "log in with the URL ground control printed, or send Authorization: Bearer TOKEN")
        instructor_only = path.startswith("/api/v1/instructor/") or path in ("/instructor", "/api/v1/audit")
        if instructor_only and role is not Role.INSTRUCTOR:
            return _error(403, "the instructor role is needed")
        request["role"] = role
        with structlog.contextvars.bound_contextvars(role=str(role), path=path):
            try:
                return await handler(request)
            except web.HTTPException:
                raise
            except Exception as exc:  # a bug in a handler answers 500 and is logged; the service goes on
                self.log.exception("console_handler_error", error=repr(exc))
                if path == "/api/v1/live":
                    raise  # the socket is open already: aiohttp closes it, no HTTP answer can follow
                return _error(500, f"internal error: {type(exc).__name__}")

    async def _index(self, request: web.Request) -> web.StreamResponse:
        token = request.cookies.get(self.cookie_name)
        role = self.tokens.role_of(token)
        if role is None:
            return web.Response(status=401, text="Lunar GS console: open the login URL ground control printed.\n")
        raise web.HTTPSeeOther(f"/{role}")

    async def _login(self, request: web.Request) -> web.StreamResponse:
        role = self.tokens.role_of(request.query.get("token"))
        if role is None:
            return _error(401, "unknown token")
        response = web.HTTPSeeOther(f"/{role}")
        response.set_cookie(self.cookie_name, request.query["token"], httponly=True, samesite="Strict", path="/")
        self.gc.audit.record(str(role), "login", self.gc.runtime.sim_now(),
                             peer=request.remote or "", agent=request.headers.get("User-Agent", "")[:120])
        raise response

    def _page(self, name: str) -> Any:
        async def page(request: web.Request) -> web.StreamResponse:
            path = STATIC_DIR / name
            if not path.exists():
                return _error(404, f"{name} is not installed")
            return web.FileResponse(path, headers={"Cache-Control": "no-store"})
        return page

    @staticmethod
    async def _body(request: web.Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise web.HTTPBadRequest(text=json.dumps({"error": "the body must be JSON", "field": None}),
                                     content_type="application/json") from None
        if not isinstance(body, dict):
            raise web.HTTPBadRequest(text=json.dumps({"error": "the body must be a JSON object", "field": None}),
                                     content_type="application/json")
        return body

    @staticmethod
    def _by(request: web.Request, body: dict[str, Any]) -> str:
        """Who acts: the role, with the name the console gave, if any."""
        role = str(request["role"])
        name = body.get("by")
        if isinstance(name, str) and name.strip():
            return f"{role}:{name.strip()[:BY_MAX]}"
        return role

    # -- telemetry ----------------------------------------------------------------------------------------------
    async def _get_dictionary(self, request: web.Request) -> web.StreamResponse:
        return _json(self._dictionary)

    def _stale(self, node: str, sim_time: float, now: float) -> bool:
        if node in FAR_SIDE_NAMES and self.gc.link.get("state") == "los":
            return True
        return now - sim_time > self.stale_after_s

    async def _get_latest(self, request: web.Request) -> web.StreamResponse:
        now = self.gc.runtime.sim_now()
        return _json({node: {"seq": fields.get("seq"), "sim_time": fields.get("sim_time"),
                             "received_sim": self.gc.received_at.get(node),
                             "stale": self._stale(node, float(fields.get("sim_time") or 0.0), now),
                             "values": flatten_housekeeping(fields)}
                      for node, fields in self.gc.latest.items()})

    async def _get_history(self, request: web.Request) -> web.StreamResponse:
        query = request.query
        node = query.get("node", "")
        if node not in self._dictionary["nodes"]:
            return _error(400 if not node else 404, f"unknown node {node!r}", "node")
        wanted = [p for p in query.get("parameters", "").split(",") if p]
        since, until = _number(query, "since"), _number(query, "until")
        limit = _number(query, "limit")
        count = HISTORY_LIMIT_MAX if limit is None else int(limit)
        if not 1 <= count <= HISTORY_LIMIT_MAX:
            return _error(400, f"limit must be from 1 to {HISTORY_LIMIT_MAX}", "limit")
        rows = []
        for seq, sim_time, body in self.gc.archive.packets(node, since=since, until=until, limit=count):
            values = flatten_housekeeping(json.loads(body))
            rows.append({"seq": seq, "sim_time": sim_time,
                         "values": {k: values.get(k) for k in wanted} if wanted else values})
        return _json({"node": node, "rows": rows})

    async def _get_events(self, request: web.Request) -> web.StreamResponse:
        node = request.query.get("node")
        limit = int(_number(request.query, "limit") or 500)
        seen = [s for s in self.gc.events if node is None or s.node == node][-max(1, min(limit, 5000)):]
        return _json({"events": [{"node": s.node, "sim_time": s.event.sim_time, "event": s.event.event,
                                  "severity": str(s.event.severity), "message": s.event.message,
                                  "data": s.event.data} for s in seen]})

    async def _live(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=64 * 1024, compress=False)
        await ws.prepare(request)
        role = request["role"]
        self._sockets.add(ws)
        self.gc.audit.record(str(role), "console.connect", self.gc.runtime.sim_now())
        with self.gc.feed.listen(sees_truth=role is Role.INSTRUCTOR) as listener:
            await ws.send_str(json.dumps({"type": "hello", "role": str(role), "clock": self.gc.clock_view(),
                                          "link": self.gc.link}, default=str))

            async def write() -> None:
                while not ws.closed:
                    items, dropped = await listener.next_batch()
                    if dropped:
                        await ws.send_str(json.dumps({"type": "overflow", "dropped": dropped}))
                    if items:
                        await ws.send_str(json.dumps({"type": "batch", "items": items}, default=str))
                        # what arrives meanwhile shares the next frame: a busy stream costs a browser at
                        # most FRAMES_PER_S frames a second, a quiet one waits for nothing
                        await asyncio.sleep(FRAME_GAP_S)

            writer = asyncio.get_running_loop().create_task(write())
            try:
                async for message in ws:  # consoles send nothing that matters; reading notices the close
                    if message.type is WSMsgType.ERROR:
                        break
            finally:
                writer.cancel()
                with contextlib.suppress(asyncio.CancelledError, ConnectionResetError):
                    await writer
                self._sockets.discard(ws)
        return ws

    # -- alarms ---------------------------------------------------------------------------------------------------
    async def _get_alarms(self, request: web.Request) -> web.StreamResponse:
        now = self.gc.runtime.sim_now()
        return _json({"alarms": [e.to_json(now) for e in self.gc.alarm_book.listed(now)]})

    async def _post_alarm(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request)
        try:
            entry = self.gc.alarm_action(request.match_info["action"], request.match_info["name"],
                                         role=str(request["role"]), by=self._by(request, body),
                                         comment=body.get("comment"), duration_s=body.get("duration_s"))
        except AlarmActionError as exc:
            return _error(exc.status, str(exc), exc.field)
        return _json(entry.to_json(self.gc.runtime.sim_now()))

    # -- commands ---------------------------------------------------------------------------------------------------
    async def _get_commands(self, request: web.Request) -> web.StreamResponse:
        return _json({"commands": [c.to_json() for c in self.gc.book.commands.values()]})

    async def _post_command(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request)
        node, command, args = body.get("node"), body.get("command"), body.get("args", {})
        if not isinstance(node, str) or not node:
            return _error(400, "node is required", "node")
        if not isinstance(command, str) or not command or len(command) > 64:
            return _error(400, "command is required (at most 64 characters)", "command")
        if not isinstance(args, dict):
            return _error(400, "args must be an object", "args")
        client_ref = body.get("client_ref")
        if client_ref is not None and (not isinstance(client_ref, str) or not 1 <= len(client_ref) <= 64):
            return _error(400, "client_ref must be text of 1 to 64 characters", "client_ref")
        try:
            tracked = await self.gc.submit(node, command, args, role=str(request["role"]),
                                           by=self._by(request, body), via="console",
                                           confirm=body.get("confirm") is True, client_ref=client_ref)
        except CommandRefused as exc:
            return _error(exc.status, str(exc), "confirm" if exc.status == 409 else "node")
        return _json(tracked.to_json(), status=201)

    # -- clock, link, audit --------------------------------------------------------------------------------------
    async def _get_clock(self, request: web.Request) -> web.StreamResponse:
        return _json(self.gc.clock_view())

    async def _get_link(self, request: web.Request) -> web.StreamResponse:
        return _json(self.gc.link)

    async def _get_audit(self, request: web.Request) -> web.StreamResponse:
        limit = int(_number(request.query, "limit") or 200)
        return _json({"entries": self.gc.audit.tail(max(1, min(limit, 2000)))})

    # -- instructor ----------------------------------------------------------------------------------------------
    async def _get_catalogue(self, request: web.Request) -> web.StreamResponse:
        return _json(self.desk.catalogue)

    async def _get_active(self, request: web.Request) -> web.StreamResponse:
        return _json(self.desk.active)

    async def _get_truth(self, request: web.Request) -> web.StreamResponse:
        limit = int(_number(request.query, "limit") or 200)
        return _json({"records": list(self.desk.truth)[-max(1, min(limit, 2000)):]})

    async def _post_fault(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request)
        try:
            record = await self.desk.inject(body, self._by(request, {}))
        except DeskError as exc:
            return _error(exc.status, str(exc), exc.field)
        data = record.model_dump(mode="json")
        return _json(data, status=201 if record.entry == "accepted" else 422)

    async def _delete_fault(self, request: web.Request) -> web.StreamResponse:
        fault_id = request.match_info["fault_id"]
        if not 1 <= len(fault_id) <= 64:
            return _error(400, "fault_id must be 1 to 64 characters", "fault_id")
        await self.desk.clear(fault_id, self._by(request, {}))
        return _json({"fault_id": fault_id}, status=202)

    async def _post_clock(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request)
        try:
            return _json(await self.desk.clock(body, self._by(request, body)))
        except DeskError as exc:
            return _error(exc.status, str(exc), exc.field)

    async def _get_bookmarks(self, request: web.Request) -> web.StreamResponse:
        return _json({"bookmarks": self.desk.bookmarks})

    async def _post_bookmark(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request)
        try:
            return _json(self.desk.bookmark(body, self._by(request, body)), status=201)
        except DeskError as exc:
            return _error(exc.status, str(exc), exc.field)

