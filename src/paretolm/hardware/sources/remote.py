"""The ``remote`` source: a client of ``paretolm serve`` (``paretolm.hardware.sources.server``).

The client first asks the server what it measures (``GET /info``: target settings, device
fingerprint, torch version) and refuses a server whose settings or device do not fit the target.
Each measurement is then ``POST /measure`` with the spec. Answers go through a ``Profiler`` keyed by
the *server's* fingerprint, so they are cached here as well as on the server: a dropped connection
or a restarted run loses nothing. Connection errors, timeouts and busy or rate-limited answers are
retried with exponential backoff; a refusal (bad token, bad spec) is raised at once with the
server's message.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paretolm.core.arch import ArchSpec
from paretolm.core.artifacts import canonical_hash, write_json
from paretolm.hardware.profiling import Profiler
from paretolm.hardware.sources.base import DEFAULT_TOKEN_ENV, ProfilerSource, fingerprint_problem, settings_difference

log = logging.getLogger("paretolm.hardware.sources")

MIN_TOKEN_LENGTH = 16
_RETRY_STATUS = {429, 502, 503, 504}  # worth asking again: rate-limited, busy, a proxy in between


class RemoteError(ValueError):
    """The server refused a request (``status``: its HTTP code; the message is the server's) or
    could not be reached (``status`` None)."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


def token_from_env(hardware: str, env: str = DEFAULT_TOKEN_ENV) -> str:
    """The shared secret from environment variable ``env``; ValueError naming it when unset."""
    token = os.environ.get(env, "")
    if not token:
        raise ValueError(
            f"hardware target {hardware!r}: remote measurement needs the server's token in the "
            f"environment variable {env} (see docs/hardware.md)"
        )
    return token


@dataclass
class Client:
    """HTTP client of one measurement server."""

    url: str
    token: str
    timeout: float = 900.0  # seconds per request: a measurement may wait for another one first
    retries: int = 8
    backoff: float = 0.5  # first wait between retries, doubled each time up to max_backoff
    max_backoff: float = 30.0
    retried: int = 0

    def __post_init__(self) -> None:
        parts = urllib.parse.urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"remote.url: expected http://host:port or https://host:port, got {self.url!r}")

    def info(self, retries: int | None = None) -> dict[str, Any]:
        return self._request("GET", "/info", retries=retries)

    def measure(self, spec: ArchSpec, settings: Mapping[str, Any]) -> dict[str, Any]:
        """The server's measurement of ``spec`` (measured there or from its cache)."""
        answer = self._request("POST", "/measure", {"spec": spec.to_dict(), "settings": dict(settings)})
        result = answer.get("result")
        if not isinstance(result, dict) or result.get("arch_id") != spec.arch_id:
            raise RemoteError(f"{self.url}: the server answered for another architecture than {spec.arch_id}")
        return result

    def _request(
        self, method: str, path: str, body: Mapping[str, Any] | None = None, retries: int | None = None
    ) -> dict[str, Any]:
        retries = self.retries if retries is None else retries
        data = None if body is None else json.dumps(body).encode()
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        url = self.url.rstrip("/") + path
        attempt = 0
        while True:
            request = urllib.request.Request(url, data=data, headers=headers, method=method)
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310  (http(s) only)
                    return json.loads(response.read())
            except urllib.error.HTTPError as e:
                message = _error_message(e)
                if e.code not in _RETRY_STATUS or attempt >= retries:
                    raise RemoteError(f"{url}: HTTP {e.code}: {message}", e.code) from None
                wait = _retry_after(e, self._wait(attempt))
                why = f"HTTP {e.code} ({message})"
            except (OSError, http.client.HTTPException, json.JSONDecodeError) as e:  # refused, reset, timed out
                if attempt >= retries:
                    raise RemoteError(f"{url}: no answer after {attempt + 1} attempts ({_reason(e)})") from None
                wait = self._wait(attempt)
                why = _reason(e)
            attempt += 1
            self.retried += 1
            log.warning("%s %s: %s; retrying in %.1f s (%d/%d)", method, url, why, wait, attempt, retries)
            time.sleep(wait)

    def _wait(self, attempt: int) -> float:
        return min(self.backoff * 2**attempt, self.max_backoff)


def _error_message(e: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(e.read()).get("error", e.reason))
    except (ValueError, AttributeError, OSError):
        return str(e.reason)


def _retry_after(e: urllib.error.HTTPError, default: float) -> float:
    try:
        return max(default, min(float(e.headers.get("Retry-After", "")), 300.0))
    except ValueError:
        return default


def _reason(e: BaseException) -> str:
    reason = getattr(e, "reason", None) or e
    return f"{type(reason).__name__}: {reason}" if str(reason) else type(reason).__name__


def _info_path(cache_dir: str | Path | None, hardware: str, url: str) -> Path | None:
    if cache_dir is None:
        return None
    return Path(cache_dir) / hardware / f"server-{canonical_hash(url.rstrip('/'))}.json"


def server_info(client: Client, hardware: str, cache_dir: str | Path | None) -> dict[str, Any]:
    """What the server measures; the last answer is kept beside the cache, so a run whose
    measurements are all cached here still works while the server is unreachable."""
    path = _info_path(cache_dir, hardware, client.url)
    known = path is not None and path.exists()
    try:
        info = client.info(retries=1 if known else None)  # known: measurements retry when they need it
    except RemoteError as e:
        if e.status is not None or not known:
            raise RemoteError(f"hardware target {hardware!r}: {e}", e.status) from None
        log.warning("%s; using the server's last known settings and device from %s", e, path)
        return json.loads(path.read_text())
    if path is not None:
        write_json(info, path)
    return info


def remote_source(
    hardware: str, target: Mapping[str, Any], settings: Any, cache_dir: str | Path | None
) -> ProfilerSource:
    """Measure through the server at ``target.remote.url``, caching its answers under ``cache_dir``."""
    remote = dict(target.get("remote") or {})
    if not remote.get("url"):
        raise ValueError(f"hardware.{hardware}.remote.url: a remote target needs the server's URL")
    client = Client(
        remote["url"],
        token_from_env(hardware, remote.get("token_env") or DEFAULT_TOKEN_ENV),
        timeout=float(remote.get("timeout", 900)),
        retries=int(remote.get("retries", 8)),
    )
    info = server_info(client, hardware, cache_dir)
    differ = settings_difference(settings.to_dict(), info.get("settings") or {})
    if differ:
        raise RemoteError(
            f"hardware target {hardware!r}: the server at {client.url} measures with other settings: "
            f"{', '.join(differ)}; start it with the same config"
        )
    problem = fingerprint_problem(target, info.get("fingerprint") or {})
    if problem:
        raise RemoteError(f"hardware target {hardware!r}: the server at {client.url} does not fit: {problem}")
    profiler = Profiler(
        hardware,
        settings,
        cache_dir,
        measure_fn=lambda spec, s: client.measure(spec, s.to_dict()),
        fingerprint=info["fingerprint"],
        torch_version=info["torch"],
        check=False,
    )
    return ProfilerSource("remote", profiler, lambda: {"retries": client.retried})
