"""``paretolm serve``: measure architectures on this device for a search running elsewhere.

A small HTTP server from the standard library with two endpoints:

* ``GET /info``: the target's name and measurement settings, this device's fingerprint and torch
  version, and the server's limits;
* ``POST /measure`` with ``{"spec": {...}, "settings": {...}}``: the measurement of the spec
  (``{"result": {...}, "cached": bool, "started": t, "finished": t}``).

It is meant to be safe to leave running on a lab network. Every request is checked in this order,
cheapest first, and refused with a JSON ``{"error": ...}``:

1. more than ``max_clients`` connections at once: 503;
2. more than ``rate`` requests in the last minute from this client address: 429 (Retry-After);
3. no ``Authorization: Bearer <token>`` or a wrong token: 401 (compared in constant time);
4. no Content-Length, or a body over ``max_body`` bytes: 400 / 413, before reading it;
5. not JSON, settings other than the server's, a spec ``ArchSpec`` rejects, a model over
   ``max_params`` parameters, a sequence longer than the spec's ``max_seq_len``: 400, before any
   model is built;
6. another measurement still running after ``wait`` seconds: 503 (Retry-After).

One measurement runs at a time (a lock, then one worker thread), so measurements never overlap
and disturb each other.
Results go through the server's own measurement cache, so a request repeated after a dropped
connection is answered from it. The token is read from an environment variable, never from the
command line (where ``ps`` shows it), and the server listens on 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from paretolm import __version__
from paretolm.core.arch import ArchSpec
from paretolm.core.counting import count
from paretolm.hardware.profiling import Profiler
from paretolm.hardware.sources.base import settings_difference

log = logging.getLogger("paretolm.serve")

_DRAIN_MAX = 4 << 20  # bytes of an oversized body still read before refusing it


class Refused(Exception):
    """A request the server answers with ``status`` and ``{"error": message}``."""

    def __init__(self, status: int, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after


@dataclass
class Limits:
    """What one server accepts."""

    max_params: int = 300_000_000  # total parameters of a model it will build (1.2 GB in float32)
    max_body: int = 64 * 1024  # bytes of a request body
    rate: int = 120  # requests per minute from one client address
    max_clients: int = 8  # connections handled at once
    wait: float = 600.0  # seconds a request waits for the running measurement to finish


class RateLimit:
    """At most ``per_minute`` requests per client address in any sliding minute."""

    def __init__(self, per_minute: int):
        self.per_minute = per_minute
        self.seen: dict[str, deque[float]] = {}
        self.lock = threading.Lock()

    def retry_after(self, client: str) -> float | None:
        """Seconds until ``client`` may ask again, or None (and the request is counted)."""
        now = time.monotonic()
        with self.lock:
            if len(self.seen) > 4096:  # forget idle clients, so the table cannot grow without bound
                self.seen = {c: q for c, q in self.seen.items() if q and now - q[-1] < 60}
            times = self.seen.setdefault(client, deque())
            while times and now - times[0] >= 60:
                times.popleft()
            if len(times) >= self.per_minute:
                return 60 - (now - times[0])
            times.append(now)
            return None


@dataclass
class Measurements:
    """The server's state: the target, its profiler (and cache), the one-at-a-time lock."""

    hardware: str
    profiler: Any  # paretolm.hardware.profiling.Profiler
    token: str
    limits: Limits = field(default_factory=Limits)

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        # Measurements run on one long-lived thread, not on the request's own: the PyTorch
        # profiler (peak memory) expects every use in a process to come from the same thread.
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="measure")
        self.rate = RateLimit(self.limits.rate)
        self.connections = threading.BoundedSemaphore(self.limits.max_clients)
        self.info = {
            "hardware": self.hardware,
            "settings": self.profiler.settings.to_dict(),
            "fingerprint": self.profiler.fingerprint,
            "torch": self.profiler.torch_version,
            "paretolm": __version__,
            "measurement_key": self.profiler.key_hash,
            "max_params": self.limits.max_params,
            "max_body": self.limits.max_body,
        }

    def authorised(self, header: str | None) -> bool:
        scheme, _, given = (header or "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), self.token.encode())

    def spec_of(self, body: Any) -> ArchSpec:
        """The validated spec of a request body; Refused (400) naming what is wrong."""
        if not isinstance(body, dict) or not isinstance(body.get("spec"), dict):
            raise Refused(400, 'expected a JSON object {"spec": {...}, "settings": {...}}')
        settings = body.get("settings")
        if settings is not None:
            differ = settings_difference(self.info["settings"], settings if isinstance(settings, dict) else {})
            if differ:
                raise Refused(400, f"this server measures {self.hardware!r} with other settings: {', '.join(differ)}")
        try:
            spec = ArchSpec.from_dict(body["spec"])
            n_params = count(spec, self.profiler.settings.seq_len).total_params
        except (ValueError, TypeError, KeyError) as e:
            raise Refused(400, f"invalid spec: {e}") from None
        if n_params > self.limits.max_params:
            raise Refused(
                400,
                f"spec {spec.arch_id}: {n_params:,} parameters, over this server's cap of "
                f"{self.limits.max_params:,} (paretolm serve --max-params)",
            )
        if self.profiler.settings.seq_len > spec.max_seq_len:
            raise Refused(
                400,
                f"spec {spec.arch_id}: max_seq_len={spec.max_seq_len} is below the measured "
                f"seq_len={self.profiler.settings.seq_len}",
            )
        return spec

    def measure(self, spec: ArchSpec) -> dict[str, Any]:
        """Measure ``spec`` (or read it from the cache), one measurement at a time."""
        if not self.lock.acquire(timeout=self.limits.wait):
            raise Refused(503, f"busy: another measurement has run for over {self.limits.wait:.0f} s", retry_after=30)
        try:
            log.info("measuring %s", spec.arch_id)
            hits = self.profiler.cache_hits
            started = time.time()
            try:
                result = self.worker.submit(self.profiler, spec).result()
            except Exception as e:  # noqa: BLE001  (the client gets the reason; the server keeps serving)
                log.exception("measuring %s failed", spec.arch_id)
                raise Refused(500, f"measuring {spec.arch_id} failed: {type(e).__name__}: {e}") from None
            return {
                "result": result,
                "cached": self.profiler.cache_hits > hits,
                "started": started,
                "finished": time.time(),
            }
        finally:
            self.lock.release()


class Handler(BaseHTTPRequestHandler):
    """One request; ``server.state`` is the ``Measurements``."""

    server_version = "paretolm-serve"
    timeout = 30  # seconds a client may take to send its request (a stalled one is dropped)

    @property
    def state(self) -> Measurements:
        return self.server.state  # type: ignore[attr-defined]

    def do_GET(self) -> None:  # noqa: N802  (http.server's naming)
        self._handle(lambda: self.state.info if self._path() == "/info" else self._not_found())

    def do_POST(self) -> None:  # noqa: N802
        self._handle(
            lambda: (
                self.state.measure(self.state.spec_of(self._body()))
                if self._path() == "/measure"
                else self._not_found()
            )
        )

    def _path(self) -> str:
        return self.path.split("?", 1)[0]

    def _not_found(self) -> dict[str, Any]:
        raise Refused(404, f"no endpoint {self.command} {self._path()} (GET /info, POST /measure)")

    def _body(self) -> Any:
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            raise Refused(400, "a request body needs a Content-Length")
        if int(length) > self.state.limits.max_body:
            self._drain(int(length))
            raise Refused(
                413,
                f"request body of {int(length):,} bytes, over the cap of "
                f"{self.state.limits.max_body:,} (paretolm serve --max-body)",
            )
        try:
            return json.loads(self.rfile.read(int(length)))
        except (ValueError, UnicodeDecodeError) as e:
            raise Refused(400, f"the body is not JSON ({e})") from None

    def _drain(self, length: int) -> None:
        """Read and drop a refused body of moderate size, so the client gets the answer instead of
        a connection reset; a huge one is not read (the connection is closed after the answer)."""
        if length <= _DRAIN_MAX:
            try:
                while length > 0:
                    chunk = self.rfile.read(min(length, 1 << 16))
                    if not chunk:
                        break
                    length -= len(chunk)
            except OSError:
                pass

    def _handle(self, answer: Any) -> None:
        state = self.state
        client = self.client_address[0]
        t0 = time.perf_counter()
        if not state.connections.acquire(blocking=False):
            self._send(503, {"error": "too many connections at once; try again"}, retry_after=5)
            return
        try:
            wait = state.rate.retry_after(client)
            if wait is not None:
                raise Refused(
                    429, f"more than {state.limits.rate} requests in a minute from {client}", retry_after=wait
                )
            if not state.authorised(self.headers.get("Authorization")):
                log.warning("refused %s %s from %s: missing or wrong token", self.command, self._path(), client)
                raise Refused(401, "missing or wrong token (Authorization: Bearer <token>)")
            status, body, retry = 200, answer(), None
        except Refused as e:
            status, body, retry = e.status, {"error": e.message}, e.retry_after
        finally:
            state.connections.release()
        self._send(status, body, retry_after=retry)
        arch = (body.get("result") or {}).get("arch_id", "") if status == 200 else body.get("error", "")
        log.info(
            "%s %s from %s: %d %s (%.0f ms)",
            self.command,
            self._path(),
            client,
            status,
            arch,
            1000 * (time.perf_counter() - t0),
        )

    def _send(self, status: int, body: Mapping[str, Any], retry_after: float | None = None) -> None:
        data = json.dumps(body, default=str).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            if status == 401:
                self.send_header("WWW-Authenticate", "Bearer")
            if retry_after is not None:
                self.send_header("Retry-After", str(max(1, round(retry_after))))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            log.warning("client %s went away before the answer; it stays in the cache", self.client_address[0])
        self.close_connection = True  # one request per connection: a refused body is never read

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  (http.server's signature)
        pass  # requests are logged by _handle, without headers (the token stays out of logs)


class MeasurementServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], state: Measurements):
        super().__init__(address, Handler)
        self.state = state

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


def make_server(
    hardware: str,
    settings: Any,
    token: str,
    cache_dir: Any,
    host: str = "127.0.0.1",
    port: int = 8750,
    limits: Limits | None = None,
) -> MeasurementServer:
    """A server measuring target ``hardware`` with ``settings`` on this machine (checked first)."""
    profiler = Profiler(hardware, settings, cache_dir)
    return MeasurementServer((host, port), Measurements(hardware, profiler, token, limits or Limits()))
