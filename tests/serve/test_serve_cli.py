"""``penchant serve`` and ``penchant keys create`` as people run them: real processes, real HTTP."""

import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

from tests.servers import free_port

PENCHANT = [sys.executable, "-m", "penchant"]


def run(*args):
    return subprocess.run([*PENCHANT, *args], capture_output=True, text=True, timeout=120)


def request(url, method="GET", body=None, key=None):
    headers = {"Content-Type": "application/json"} | ({"X-API-Key": key} if key else {})
    data = json.dumps(body).encode() if body is not None else None
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, data, headers, method=method), timeout=10
        ) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_open_mode_refuses_to_bind_beyond_loopback(ease_run):
    result = run("serve", "--run", str(ease_run), "--open", "--host", "0.0.0.0")
    assert result.returncode == 2
    assert result.stderr.startswith("error: --open") and "refusing --host 0.0.0.0" in result.stderr


def test_serve_needs_a_run_and_a_database_url(tmp_path, ease_run):
    result = run("serve", "--run", str(tmp_path / "missing"))
    assert result.returncode == 2 and "run.json missing" in result.stderr
    result = run("serve", "--run", str(ease_run), "--db", "mysql://somewhere/db")
    assert result.returncode == 2 and result.stderr.startswith(
        "error: --db mysql://somewhere/db: expected sqlite"
    )


def test_keys_create_prints_the_key_once(tmp_path):
    url = f"sqlite:///{tmp_path / 'keys.db'}"
    result = run("keys", "create", "--db", url, "--scope", "read")
    assert result.returncode == 0
    assert result.stdout.count("\n") == 1 and result.stdout.startswith("pk_")
    assert "cannot be shown again" in result.stderr
    assert run("keys", "create", "--db", url, "--scope", "owner").returncode == 2
    assert "give --db" in run("keys", "create", "--scope", "read").stderr
    admin = run("keys", "create", "--db", url, "--scope", "admin", "--name", "ops", "--expires-in-days", "30")
    assert admin.returncode == 0 and admin.stdout.startswith("pk_")
    listed = json.loads(run("keys", "list", "--db", url, "--json").stdout)
    assert [(k["scope"], k["name"], k["active"]) for k in listed] == [
        ("read", None, True),
        ("admin", "ops", True),
    ]
    key_id = admin.stdout.split("_")[1]
    assert run("keys", "revoke", key_id, "--db", url).returncode == 0
    table = run("keys", "list", "--db", url).stdout
    assert f"{key_id}  admin  revoked" in table and admin.stdout.split("_", 2)[2].strip() not in table
    again = run("keys", "revoke", key_id, "--db", url)
    assert again.returncode == 2 and again.stderr.count("\n") == 1 and "no active key" in again.stderr


def test_a_served_run_takes_keys_and_reloads_on_sighup(ease_run, tmp_path):
    url = f"sqlite:///{tmp_path / 'events.db'}"
    port = free_port()
    server = subprocess.Popen(
        [*PENCHANT, "serve", "--run", str(ease_run), "--db", url, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if request(f"{base}/health")[0] == 200:
                    break
            except OSError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)
        key = run("keys", "create", "--db", url, "--scope", "write").stdout.strip()
        event = {"user_id": "cli-user", "item_id": "m01", "timestamp": 1.7e9}
        assert request(f"{base}/events", "POST", event)[0] == 401
        assert request(f"{base}/events", "POST", event, key) == (
            200,
            '{"received":1,"stored":1,"rewarded":0}',
        )

        server.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 60
        while 'penchant_model_reloads_total{outcome="ok"} 1.0' not in request(f"{base}/metrics", key=key)[1]:
            assert time.monotonic() < deadline, "SIGHUP did not reload the run"
            time.sleep(0.2)
        assert request(f"{base}/users/cli-user/recommendations?k=2", key=key)[0] == 200
    finally:
        server.send_signal(signal.SIGINT)
        output = server.communicate(timeout=30)[0]
    assert server.returncode == 0, output
    assert "API keys required" in output
