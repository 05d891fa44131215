"""Remote measurement on the loopback address only: a real `paretolm serve` process and a real
client; bad input refused with clear errors before anything is built; measurements one at a time
and cached on both sides; a server killed mid-request and restarted; the workflow's search
measuring through a server."""

from __future__ import annotations

import json
import secrets
import select
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from test_measure import blocked, core_env, tiny_config, with_iterations
from test_workflow import make_workdir, snakemake

from paretolm import config as configuration
from paretolm.core.arch import ArchSpec
from paretolm.core.artifacts import read_provenance, read_table
from paretolm.hardware.profiling import Settings
from paretolm.hardware.sources import source_for
from paretolm.hardware.sources.remote import Client, RemoteError
from paretolm.hardware.sources.server import Limits, make_server

TOKEN = secrets.token_urlsafe(24)
LOOPBACK = "127.0.0.1"
SPEC = ArchSpec("gpt2", n_layer=1, d_model=32, n_head=[1], d_inner=[64], vocab_size=512, max_seq_len=32)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


class Server:
    """A `paretolm serve` process on the loopback address, measuring target ``hardware`` of the
    config in ``workdir`` with its own cache."""

    def __init__(self, workdir: Path, hardware: str = "board", port: int = 0, *extra: str):
        self.workdir, self.hardware, self.port, self.extra = workdir, hardware, port, extra
        self.cache = workdir / "server-cache"
        self.log = workdir / "server.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> Server:
        cmd = [
            sys.executable,
            "-m",
            "paretolm.cli",
            "serve",
            "--hardware",
            self.hardware,
            "--host",
            LOOPBACK,
            "--port",
            str(self.port),
            "--cache",
            str(self.cache),
            *self.extra,
        ]
        env = {**core_env(self.workdir), "PARETOLM_TOKEN": TOKEN}  # a core install: no workflow extras
        self.proc = subprocess.Popen(
            cmd, cwd=self.workdir, env=env, stdout=subprocess.PIPE, stderr=open(self.log, "a"), text=True
        )  # noqa: SIM115
        ready, _, _ = select.select([self.proc.stdout], [], [], 60)
        line = self.proc.stdout.readline() if ready else ""
        if "paretolm serve: measuring" not in line:
            self.stop()
            raise AssertionError(f"the server did not start: {line!r}\n{self.log.read_text()[-3000:]}")
        self.url = line.split(" at ")[1].strip()
        self.port = int(self.url.rsplit(":", 1)[1])
        return self

    def stop(self, kill: bool = False) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill() if kill else self.proc.terminate()
            self.proc.wait(timeout=30)

    def cached(self) -> int:
        return len(list((self.cache / self.hardware).glob("*.json")))


def request(url: str, path: str, body: bytes | None = None, token: str | None = TOKEN) -> tuple[int, dict]:
    """(status, JSON answer) of one raw request."""
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url + path, data=body, headers=headers, method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def board_config(**overrides) -> dict:
    return configuration.merge(tiny_config(hardware={"board": {"device": "cpu", "threads": 1}}), overrides)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    wd = make_workdir(tmp_path_factory.mktemp("device"), board_config())
    srv = Server(wd, "board", 0, "--max-params", "2000000").start()
    yield srv
    srv.stop()


def settings_of(srv: Server) -> dict:
    return request(srv.url, "/info")[1]["settings"]


def test_bad_requests_are_refused_with_clear_errors(server):
    url = server.url
    good = json.dumps({"spec": SPEC.to_dict(), "settings": settings_of(server)}).encode()
    no_token = request(url, "/info", token=None)
    assert no_token == (401, {"error": "missing or wrong token (Authorization: Bearer <token>)"})
    assert request(url, "/measure", good, token="x" * 32)[0] == 401
    assert request(url, "/measure", good, token=TOKEN[:-1])[0] == 401

    def refused(body: bytes, status: int, text: str) -> None:
        got, answer = request(url, "/measure", body)
        assert got == status and text in answer["error"], (got, answer)

    refused(b"{not json", 400, "the body is not JSON")
    refused(b"[1, 2]", 400, 'expected a JSON object {"spec"')
    refused(
        json.dumps({"spec": {"backbone": "gpt2", "n_layer": 1, "nope": 3}}).encode(),
        400,
        "invalid spec: nope: not a gene of backbone 'gpt2'",
    )
    refused(json.dumps({"spec": {**SPEC.to_dict(), "n_layer": 10**9}}).encode(), 400, "invalid spec: n_layer")
    refused(json.dumps({"spec": {**SPEC.to_dict(), "backbone": "os.system"}}).encode(), 400, "invalid spec: ")
    refused(json.dumps({"spec": SPEC.to_dict(), "pad": "x" * 100_000}).encode(), 413, "over the cap of 65,536")
    big = SPEC.with_(d_model=512, n_head=[8], d_inner=[2048])
    refused(json.dumps({"spec": big.to_dict()}).encode(), 400, "over this server's cap of 2,000,000")
    refused(
        json.dumps({"spec": SPEC.to_dict(), "settings": {**settings_of(server), "warmup": 7}}).encode(),
        400,
        "other settings: warmup=7",
    )
    assert request(url, "/nothing-here")[0] == 404
    # the client raises the server's message; nothing was built, let alone measured
    with pytest.raises(RemoteError, match="HTTP 401: missing or wrong token") as e:
        Client(url, "wrong" * 4).info()
    assert e.value.status == 401
    with pytest.raises(ValueError, match="remote.url"):
        Client("file:///etc/passwd", TOKEN)
    assert server.cached() == 0
    assert blocked(server.workdir) == []  # the server ran without the workflow extras


def test_rate_limit_and_one_measurement_at_a_time(tmp_path):
    settings = Settings(seq_len=16, warmup=1, min_repeats=10, max_repeats=10)
    srv = make_server("board", settings, TOKEN, tmp_path, LOOPBACK, 0, Limits(rate=6))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        client = Client(srv.url, TOKEN, retries=0)
        specs = [SPEC, SPEC.with_(d_model=64)]
        answers = []
        threads = [
            threading.Thread(
                target=lambda s=s: answers.append(
                    client._request("POST", "/measure", {"spec": s.to_dict(), "settings": settings.to_dict()})
                )
            )
            for s in specs
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        (a, b) = sorted((x["started"], x["finished"]) for x in answers)
        assert a[1] <= b[0], "two measurements overlapped"
        again = client._request("POST", "/measure", {"spec": SPEC.to_dict()})
        assert again["cached"] and again["result"] == next(
            x["result"] for x in answers if x["result"]["arch_id"] == SPEC.arch_id
        )
        for _ in range(3):
            client.info()
        status, answer = request(srv.url, "/info")
        assert status == 429 and "more than 6 requests in a minute" in answer["error"]
    finally:
        srv.shutdown()
        srv.server_close()


def test_cached_on_both_sides_and_a_server_killed_mid_request(tmp_path, monkeypatch):
    # long enough measurements to kill the server in the middle of one
    cfg = board_config(profile={"seq_len": 32, "warmup": 20, "min_repeats": 300, "max_repeats": 300})
    wd = make_workdir(tmp_path, cfg)
    srv = Server(wd, "board", free_port()).start()
    monkeypatch.setenv("PARETOLM_TOKEN", TOKEN)
    part = {
        "hardware": {"device": "cpu", "threads": 1, "remote": {"url": srv.url, "retries": 8}},
        "profile": cfg["profile"],
    }
    try:
        remote = source_for("board", part, tmp_path / "client-cache")
        spec = SPEC.with_(d_model=128, d_inner=[512])
        answer: dict = {}
        worker = threading.Thread(target=lambda: answer.update(remote(spec)))
        worker.start()
        deadline = time.time() + 60
        while f"measuring {spec.arch_id}" not in srv.log.read_text() and time.time() < deadline:
            time.sleep(0.01)
        srv.stop(kill=True)  # mid-measurement: the client's connection drops
        assert worker.is_alive() and srv.cached() == 0
        time.sleep(1)
        srv.start()  # the same port; the client's retry gets through
        worker.join(timeout=120)
        assert answer["arch_id"] == spec.arch_id and answer["latency_ms"] > 0
        assert remote.counts()["retries"] >= 1 and remote.counts()["measured"] == 1
        assert srv.cached() == 1 and len(list((tmp_path / "client-cache/board").glob(f"{spec.arch_id}-*.json"))) == 1
        # the answer is cached here: asked again with the server gone, nothing is lost
        srv.stop()
        again = source_for("board", part, tmp_path / "client-cache")
        assert again(spec) == answer and again.counts()["cache_hits"] == 1
    finally:
        srv.stop()


@pytest.mark.slow
def test_search_measures_through_the_server(tmp_path, monkeypatch):
    monkeypatch.setenv("PARETOLM_TOKEN", TOKEN)
    port = free_port()
    cfg = with_iterations(
        board_config(targets=["board"], hardware={"board": {"remote": {"url": f"http://{LOOPBACK}:{port}"}}}), 1
    )
    device = make_workdir(tmp_path / "device", cfg)
    laptop = make_workdir(tmp_path / "laptop", cfg)
    srv = Server(device, "board", port).start()
    try:
        snakemake(laptop, "results/pareto_board.parquet")
    finally:
        srv.stop()
    prov = read_provenance(laptop / "results/profile/board/tiny.parquet")
    assert prov["source"] == "remote" and prov["measurements"]["measured"] == 8
    archive = read_table(laptop / "results/search/lts/board/archive.parquet")
    client_cache = laptop / "results/cache/measurements/board"
    assert (
        srv.cached()
        == len(archive)
        == len([p for p in client_cache.glob("*.json") if not p.name.startswith("server-")])
    )
    # with the server gone, the search reruns from this side's cache alone
    for path in ("results/search", "results/pareto_board.parquet", "results/pareto_board.png"):
        shutil.rmtree(laptop / path) if (laptop / path).is_dir() else (laptop / path).unlink()
    snakemake(laptop, "results/pareto_board.parquet")
    prov = read_provenance(laptop / "results/pareto_board.parquet")
    assert prov["measurements"]["measured"] == 0
