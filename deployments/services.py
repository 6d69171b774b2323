"""What ``billpay demo`` and ``billpay bench`` start: a fresh database, the sandbox, a local
Prefect server, the HTTP API and ``billpay`` subprocesses, stopped in reverse order however the run ends."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.engine import URL

from billpay.config import Settings
from billpay.sandbox.app import sandbox_env
from billpay.store import engine as db_engine
from billpay.store.migrations import upgrade
from billpay.store.monitoring import recreate_database

BILLPAY = [sys.executable, "-m", "deployments.cli"]  # the console script, in this interpreter

# Prefect server settings wherever this project starts a server (demo, bench, `make ui`), and
# what README recommends for production: the task-run recorder and the event persister write
# in bigger batches. Measured when issue 11 was filed (bench, 400 bills): 4.7 -> 10.7 bills/s, server CPU per bill
# 0.229 -> 0.082 s.
PREFECT_SERVER_TUNING = {
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "200",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_READ_BATCH_SIZE": "200",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_BATCH_SIZE": "500",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_READ_BATCH_SIZE": "500",
    # A 10-second schedule: keep a few runs ahead, not the default hundred (SQLite writes).
    "PREFECT_SERVER_SERVICES_SCHEDULER_MAX_RUNS": "20",
    "PREFECT_SERVER_SERVICES_SCHEDULER_MIN_RUNS": "3",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
}


def free_port(preferred: int | None = None) -> int:
    """``preferred`` when it is free on 127.0.0.1, else any free port."""
    if preferred:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", preferred))
                return preferred
            except OSError:
                pass
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not come up within {seconds:.0f}s")


def stop_on_sigterm() -> None:
    """SIGTERM (a CI timeout, `kill`) unwinds like Ctrl-C so the services are stopped."""

    def handler(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def cpu_seconds_of(pid: int) -> float:
    """User + system CPU of a live process (Linux /proc), for the benchmark."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of a process and its children (the Prefect server runs a few)."""
    total = cpu_seconds_of(pid)
    for child in Path(f"/proc/{pid}/task").glob("*/children"):
        for child_pid in child.read_text().split():
            total += tree_cpu_seconds(int(child_pid))
    return total


def fresh_database(base: Settings, name: str) -> URL:
    """A new, migrated database ``name`` on the configured server, else the embedded one."""
    if base.database_url:
        url = db_engine.normalise_url(base.database_url).set(database=name)
    else:
        url = db_engine.embedded_url(db_engine.start_embedded(base.pgdata_dir), name)
    recreate_database(url)
    upgrade(url)
    return url


def pipeline_env(url: URL, sandbox_port: int, extra: dict[str, str]) -> dict[str, str]:
    """This process's environment pointed at ``url`` and the sandbox, plus ``extra``."""
    env = dict(os.environ)
    env.update(sandbox_env(sandbox_port))
    env["BILLPAY_DATABASE_URL"] = url.render_as_string(hide_password=False)
    env.update(extra)
    return env


def settings_from_env(env: dict[str, str], skip: tuple[str, ...] = ()) -> Settings:
    """The Settings the started processes read from ``env`` (BILLPAY_* but ``skip``)."""
    return Settings(
        **{
            key.removeprefix("BILLPAY_").lower(): value
            for key, value in env.items()
            if key.startswith("BILLPAY_") and key not in skip
        }
    )


def prefect_server_command(port: int) -> list[str]:
    prefect = shutil.which("prefect", path=str(Path(sys.executable).parent)) or "prefect"
    return [prefect, "server", "start", "--host", "127.0.0.1", "--port", str(port)]


class Services:
    """The processes a run starts, stopped in reverse order however the run ends."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        handle = (self.logs / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            args, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.procs.append((name, proc))
        return proc

    def start_sandbox(self, env: dict[str, str], port: int, *options: str) -> str:
        """The providers and Horizon simulators on ``port``; their base URL once they answer."""
        self.start("sandbox", BILLPAY + ["sandbox", "--port", str(port), *options], env)
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/_sandbox/calls", 30)
        return url

    def start_api(self, env: dict[str, str], port: int) -> str:
        """``billpay api`` on ``port`` (the database and providers of ``env``); its base URL
        once ``/healthz`` says the database is reachable (it answers 503 until then)."""
        self.start("api", BILLPAY + ["api", "--host", "127.0.0.1", "--port", str(port)], env)
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/healthz", 30)
        return url

    def start_prefect_server(
        self, env: dict[str, str], home: Path, port: int
    ) -> subprocess.Popen[bytes]:
        """A local Prefect server with a fresh history under ``home``; points ``env`` at it.
        (Its database is SQLite: Prefect needs pg_trgm, which the embedded PostgreSQL lacks.)"""
        shutil.rmtree(home, ignore_errors=True)  # this run's history only, as `make ui` shows
        home.mkdir(parents=True)
        env["PREFECT_HOME"] = str(home)
        env["PREFECT_API_URL"] = f"http://127.0.0.1:{port}/api"
        server = self.start(
            "prefect-server", prefect_server_command(port), {**env, **PREFECT_SERVER_TUNING}
        )
        wait_http(f"http://127.0.0.1:{port}/api/health", 90)
        return server

    def stop_one(self, name: str, timeout: float = 30) -> None:
        """SIGTERM one service (its process group) and wait; SIGKILL if it does not stop."""
        for proc_name, proc in self.procs:
            if proc_name == name and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)

    def any_exited(self) -> bool:
        return any(proc.poll() is not None for _, proc in self.procs)

    def stop(self) -> None:
        for _, proc in reversed(self.procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for _, proc in reversed(self.procs):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
