"""Access: API keys with read, write and admin scopes, stored hashed, expiring and revocable; open mode
only on loopback."""

import pytest

from penchant.errors import InputError
from penchant.serve import Settings
from penchant.serve.db import Database
from penchant.serve.keys import Scope, check_key, create_key


def test_keys_gate_every_resource_by_scope(serve, ease_run, db_url):
    client = serve(ease_run, open_access=False)
    db = Database(db_url)
    read, write = create_key(db, Scope.read), create_key(db, Scope.write)
    event = {"user_id": "k-user", "item_id": "m01", "timestamp": 1.7e9}

    assert client.get("/health").status_code == 200 and client.get("/health").json()["auth"] == "keys"
    missing = client.get("/users/u000/recommendations")
    assert missing.status_code == 401 and missing.json()["detail"].startswith("X-API-Key: missing")
    assert client.get("/users/u000/recommendations", headers={"X-API-Key": read + "x"}).status_code == 401
    assert client.get("/users/u000/recommendations", headers={"X-API-Key": "pk_zz_zz"}).status_code == 401
    assert client.get("/metrics").status_code == 401

    as_reader = {"X-API-Key": read}
    assert client.get("/health").json() == {"status": "ok", "auth": "keys"}  # nothing more without a key
    assert client.get("/health", headers={"X-API-Key": read + "x"}).json() == {"status": "ok", "auth": "keys"}
    assert client.get("/health", headers=as_reader).json()["model"] == "ease"
    assert client.get("/health/ready").json()["database"] in ("sqlite", "postgresql")  # a kind, no URL
    assert client.get("/users/u000/recommendations", headers=as_reader).status_code == 200
    assert client.get("/metrics", headers=as_reader).status_code == 200
    for method, path, body in (
        ("POST", "/events", event),
        ("POST", "/items", {"item_id": "x"}),
        ("DELETE", "/users/u000", None),
        ("POST", "/admin/reload", None),
    ):
        denied = client.request(method, path, json=body, headers=as_reader)
        assert denied.status_code == 403 and "read scope" in denied.json()["detail"], path

    as_writer = {"X-API-Key": write}
    assert client.post("/events", json=event, headers=as_writer).status_code == 200
    assert client.get("/users/k-user/events", headers=as_writer).status_code == 200  # write includes read
    # Erasing users, adding items and reloading are an admin's: a write key records events only.
    for method, path, body in (
        ("POST", "/items", {"item_id": "x"}),
        ("DELETE", "/users/u000", None),
        ("POST", "/admin/reload", None),
    ):
        denied = client.request(method, path, json=body, headers=as_writer)
        assert denied.status_code == 403 and "write scope; this needs admin" in denied.json()["detail"], path
    as_admin = {"X-API-Key": create_key(db, Scope.admin)}
    assert client.post("/events", json={**event, "timestamp": 1.8e9}, headers=as_admin).status_code == 200
    assert client.delete("/users/k-user", headers=as_admin).status_code == 200
    assert client.post("/admin/reload", headers=as_admin).status_code == 200
    db.close()


def test_keys_expire_are_revoked_and_listed_without_secrets(db_url, monkeypatch):
    import time as clock

    from penchant.serve.keys import list_keys, revoke_key

    db = Database(db_url)
    db.migrate()
    lasting, brief = create_key(db, Scope.read, name="dash"), create_key(db, Scope.write, expires_in_days=1)
    assert check_key(db, lasting) is Scope.read and check_key(db, brief) is Scope.write
    now = clock.time()
    monkeypatch.setattr("penchant.serve.keys.time.time", lambda: now + 86_400 + 1)  # a day later
    assert check_key(db, brief) is None and check_key(db, lasting) is Scope.read
    monkeypatch.undo()
    revoke_key(db, lasting.split("_")[1])
    assert check_key(db, lasting) is None
    with pytest.raises(InputError, match="no active key with ID"):
        revoke_key(db, lasting.split("_")[1])
    listed = list_keys(db)
    assert [(k["scope"], k["name"], k["active"]) for k in listed] == [
        ("read", "dash", False),
        ("write", None, True),
    ]
    assert listed[0]["revoked_at"] is not None and listed[1]["expires_at"] is not None
    # Each verification records the key's use; a key never presented has none.
    assert listed[0]["last_used_at"] is not None and listed[1]["last_used_at"] is not None
    unused = create_key(db, Scope.read)
    assert list_keys(db)[-1]["last_used_at"] is None
    check_key(db, unused)
    assert list_keys(db)[-1]["last_used_at"] is not None
    assert not any(lasting.split("_", 2)[2] in str(k) or brief.split("_", 2)[2] in str(k) for k in listed)
    with pytest.raises(InputError, match="--expires-in-days must be > 0"):
        create_key(db, Scope.read, expires_in_days=0)
    db.close()


def test_keys_are_stored_hashed_and_checked(db_url):
    db = Database(db_url)
    db.migrate()
    key = create_key(db, Scope.write, name="ci")
    rows = db.fetchall("SELECT key_id, salt, key_hash, scope, name FROM api_keys")
    assert len(rows) == 1 and rows[0][3:] == ("write", "ci")
    assert all(key.split("_", 2)[2] not in str(value) for value in rows[0])  # the secret is never stored
    assert check_key(db, key) is Scope.write
    assert (
        check_key(db, key[:-1]) is None
        and check_key(db, "") is None
        and check_key(db, "pk_" + "a" * 12 + "_x") is None
    )
    assert create_key(db, Scope.read) != create_key(db, Scope.read)
    db.close()


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.5", "example.org", "::"])
def test_open_access_refuses_non_loopback_addresses(tmp_path, host):
    with pytest.raises(InputError, match="loopback"):
        Settings(run_dir=tmp_path, db_url="sqlite:///x.db", host=host, open_access=True)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.3.4.5", "::1", "localhost"])
def test_open_access_allows_loopback(tmp_path, host):
    assert (
        Settings(run_dir=tmp_path, db_url="sqlite:///x.db", host=host, open_access=True).auth_required
        is False
    )


def test_open_server_refuses_rebound_hosts_and_cross_site_writes(serve, ease_run):
    client = serve(ease_run, open_access=True)
    assert client.get("/health").status_code == 200
    # DNS rebinding: a page at evil.example whose name now points at 127.0.0.1 sends its own Host.
    rebound = client.get("/users/u000/recommendations", headers={"host": "evil.example:8000"})
    assert rebound.status_code == 403 and "evil.example" in rebound.json()["detail"]
    # A bodiless POST from another site's page is a CORS simple request: its Origin gives it away.
    cross = client.post("/admin/reload", headers={"origin": "https://evil.example"})
    assert cross.status_code == 403 and "another site" in cross.json()["detail"]
    assert client.post("/admin/reload", headers={"origin": "http://127.0.0.1:8000"}).status_code == 200
    assert (
        client.get("/health", headers={"origin": "https://evil.example"}).status_code == 200
    )  # reads: Host only


def test_key_server_has_no_host_guard(serve, ease_run):
    client = serve(ease_run, open_access=False)  # keys stop cross-site requests; any proxy name works
    assert client.get("/health", headers={"host": "recs.example.com"}).status_code == 200


# Who may call each route: None = anyone (liveness and readiness, which say nothing else); otherwise
# the least scope (read < write < admin). Every route in /openapi.json must be in this table.
ACCESS = {
    ("GET", "/health"): None,
    ("GET", "/health/ready"): None,
    ("GET", "/metrics"): "read",
    ("GET", "/feedback"): "read",
    ("GET", "/users"): "read",
    ("GET", "/users/{user_id}/events"): "read",
    ("GET", "/users/{user_id}/recommendations"): "read",
    ("GET", "/users/{user_id}/recommendations/{item_id}/explanation"): "read",
    ("GET", "/users/{user_id}/profile"): "read",
    ("GET", "/items/{item_id}"): "read",
    ("POST", "/events"): "write",
    ("POST", "/items"): "admin",
    ("POST", "/admin/reload"): "admin",
    ("DELETE", "/users/{user_id}"): "admin",
}
RANK = {None: 0, "read": 1, "write": 2, "admin": 3}


def test_every_route_answers_each_kind_of_key_as_the_access_table_says(
    serve, transformer_run, db_url, tmp_path
):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(transformer_run, run_dir)  # an admin's DELETE rewrites the run directory
    client = serve(run_dir, open_access=False)
    routes = {(m.upper(), p) for p, ops in client.get("/openapi.json").json()["paths"].items() for m in ops}
    assert routes == set(ACCESS)
    db = Database(db_url)
    keys = {None: None, **{s: create_key(db, Scope(s)) for s in ("read", "write", "admin")}}
    db.close()
    bodies = {
        "/events": {"user_id": "u000", "item_id": "m01", "timestamp": 1.7e9},
        "/items": {"item_id": "new"},
    }
    order = sorted(ACCESS, key=lambda r: r[0] == "DELETE")  # the erasure last
    for held in (None, "read", "write", "admin"):
        headers = {"X-API-Key": keys[held]} if held else {}
        for method, template in order:
            path = template.replace("{user_id}", "u000").replace("{item_id}", "m01")
            answer = client.request(method, path, json=bodies.get(template), headers=headers)
            needed = ACCESS[(method, template)]
            allowed = RANK[held] >= RANK[needed]
            expected = (201 if template == "/items" else 200) if allowed else (401 if held is None else 403)
            assert answer.status_code == expected, (
                held,
                method,
                template,
                answer.status_code,
                answer.text[:200],
            )
            if held is None and needed is None:  # what anyone may read leaks no path, URL or model
                assert (
                    "/" not in answer.text and "ease" not in answer.text and "transformer" not in answer.text
                )
