"""Shared by the service benchmarks: a real `penchant serve` process on loopback, a keep-alive HTTP
client, percentiles, machine facts and report writing. Every loop is bounded in count and time."""

from __future__ import annotations

import http.client
import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
PYTHON = sys.executable
HOST = "127.0.0.1"  # loopback only


def penchant(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PYTHON, "-m", "penchant", *args], capture_output=True, text=True, check=check, cwd=ROOT
    )


def ensure_ml100k_run(path: Path) -> Path:
    """The ml-100k transformer run the load benchmark serves (trained once; about 3-5 minutes)."""
    if not (path / "run.json").exists():
        print(f"training the ml-100k transformer into {path} (once) ...", file=sys.stderr)
        penchant("train", "--data", "ml-100k", "--model", "transformer", "--out", str(path))
    return path


def create_key(db_url: str, scope: str = "write") -> str:
    return penchant("keys", "create", "--db", db_url, "--scope", scope).stdout.strip()


class Server:
    """`penchant serve` in a child process; stop() is a clean SIGINT, kill() is kill -9."""

    def __init__(self, run_dir: Path, db_url: str, port: int, *extra: str, start_timeout: float = 180):
        self.base = (HOST, port)
        self.log = open(Path(os.environ.get("TMPDIR", "/tmp")) / f"penchant-serve-bench-{port}.log", "a")
        self.process = subprocess.Popen(
            [
                PYTHON,
                "-m",
                "penchant",
                "serve",
                "--run",
                str(run_dir),
                "--db",
                db_url,
                "--host",
                HOST,
                "--port",
                str(port),
                *extra,
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
        deadline = time.monotonic() + start_timeout
        while True:
            try:
                if Client(*self.base).request("GET", "/health")[0] == 200:
                    return
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start; see {self.log.name}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            self.process.wait(timeout=60)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)  # the process we started, by its pid
        self.process.wait(timeout=60)


class Client:
    """One keep-alive HTTP/1.1 connection."""

    def __init__(self, host: str, port: int, key: str | None = None, timeout: float = 30.0):
        self.conn = http.client.HTTPConnection(host, port, timeout=timeout)
        self.headers = {"Content-Type": "application/json"} | ({"X-API-Key": key} if key else {})

    def request(self, method: str, path: str, body=None) -> tuple[int, bytes]:
        data = json.dumps(body).encode() if body is not None else None
        self.conn.request(method, path, body=data, headers=self.headers)
        response = self.conn.getresponse()
        return response.status, response.read()

    def timed(self, method: str, path: str, body=None) -> tuple[int, float]:
        start = time.perf_counter()
        status, _ = self.request(method, path, body)
        return status, time.perf_counter() - start


def summary(latencies_s: list[float], seconds: float) -> dict:
    ms = np.asarray(latencies_s) * 1000.0
    return {
        "requests": int(len(ms)),
        "per_second": round(len(ms) / seconds, 1) if seconds else None,
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p90_ms": round(float(np.percentile(ms, 90)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
        "max_ms": round(float(ms.max()), 3),
    }


def conditions() -> dict:
    """Machine, and what else was running: timings on a shared machine say so."""
    load = os.getloadavg()
    top = subprocess.run(["ps", "-eo", "pcpu,comm", "--sort=-pcpu"], capture_output=True, text=True).stdout
    busy = [line.strip() for line in top.splitlines()[1:6] if line.strip() and float(line.split()[0]) >= 20.0]
    return {
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "load_average_1_5_15": [round(x, 2) for x in load],
        "niceness": os.nice(0),  # below 0: this benchmark (and its server) ran ahead of other work
        "other_busy_processes": busy,
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def write(name: str, result: dict, markdown: str) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / f"{name}.md").write_text(markdown)
    print(markdown)


def conditions_before_after(before: dict, after: dict) -> list[str]:
    """The report's closing lines: the machine and its load before and after the measurement."""
    return [
        "",
        "Conditions before:",
        "",
        conditions_md(before),
        "Conditions after:",
        "",
        conditions_md(after),
    ]


def conditions_md(c: dict) -> str:
    busy = "; ".join(c["other_busy_processes"]) or "none above 20% CPU"
    return (
        f"- machine: {c['platform']}, {c['cpu_count']} CPU cores, Python {c['python']}\n"
        f"- load average (1, 5, 15 min): {c['load_average_1_5_15']}; other busy processes: {busy}\n"
        f"- niceness of the benchmark and its server: {c['niceness']}\n"
        f"- measured {c['time_utc']}\n"
    )
