"""The ``serve`` and ``keys`` commands: settings from arguments, then the service or the key store."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from penchant.errors import InputError
from penchant.serve.db import Database, parse_url, redact
from penchant.serve.keys import create_key, list_keys, parse_scope, revoke_key
from penchant.serve.settings import Settings, default_db_url


def serve(args: argparse.Namespace) -> int:
    run_dir = Path(args.run)
    if not (run_dir / "run.json").exists():
        raise InputError(
            f"--run {run_dir}: not a penchant run directory (run.json missing); "
            "create one with penchant train"
        )
    settings = Settings(
        run_dir=run_dir,
        db_url=args.db or default_db_url(run_dir),
        host=args.host,
        port=args.port,
        open_access=args.open,
        ann_threshold=args.ann_threshold,
        device=args.device,
        unknown_users=getattr(args, "unknown_users", "popular"),
        retain_days=getattr(args, "retain_days", None),
        reward_window=getattr(args, "reward_window", 1800.0),
    )
    parse_url(settings.db_url)  # a malformed URL is a one-line error here, not a failed startup
    from penchant.models.devices import resolve_device

    resolve_device(settings.device)  # so is a device this machine does not have
    import uvicorn  # only now: a refused setting answers before the heavy imports

    from penchant.serve import create_app

    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(message)s")
    logging.getLogger("penchant.serve").info(
        "event store %s; %s",
        redact(settings.db_url),
        "open access (no keys)" if args.open else "API keys required",
    )
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level="info",
        access_log=args.access_log,
    )
    return 0


def _key_store(args: argparse.Namespace, action: str) -> tuple[Database, str]:
    if not args.db and not args.run:
        raise InputError(
            f"keys {action}: give --db URL (or --run RUN_DIR for the SQLite file next to that run)"
        )
    url = args.db or default_db_url(Path(args.run))
    db = Database(url, pool_size=1)
    try:
        db.migrate()
    except BaseException:
        db.close()
        raise
    return db, url


def forget(args: argparse.Namespace) -> int:
    from penchant.runs import load_run
    from penchant.runs.directory import erase_user
    from penchant.serve.store import EventStore

    run = load_run(args.run, device="cpu")
    from_run = erase_user(run, args.user)
    url = args.db or default_db_url(Path(args.run))
    stored = None
    if args.db or Path(parse_url(url)[1]).exists():
        db = Database(url, pool_size=1)
        try:
            db.migrate()
            stored = EventStore(db).erase_user(args.user)
        finally:
            db.close()
    where = f"{stored} from the event store {redact(url)}" if stored is not None else "no event store found"
    print(
        f"forgot user {args.user}: {from_run} events from the run {args.run}, {where}; the trained weights "
        "keep what the user taught them until the next penchant train",
        file=sys.stderr,
    )
    return 0


def keys_create(args: argparse.Namespace) -> int:
    db, url = _key_store(args, "create")
    try:
        key = create_key(db, parse_scope(args.scope), args.name, args.expires_in_days)
    finally:
        db.close()
    # The key itself goes to stdout alone (for scripts); it is not stored and cannot be shown again.
    print(key)
    print(
        f"created a {args.scope} key in {redact(url)}; store it now, it cannot be shown again",
        file=sys.stderr,
    )
    return 0


def keys_list(args: argparse.Namespace) -> int:
    db, _ = _key_store(args, "list")
    try:
        keys = list_keys(db)
    finally:
        db.close()
    if args.json:
        print(json.dumps(keys))
        return 0

    def when(t: float | None) -> str:
        return time.strftime("%Y-%m-%d %H:%M", time.gmtime(t)) if t is not None else "-"

    for k in keys:
        state = "active" if k["active"] else ("revoked" if k["revoked_at"] is not None else "expired")
        print(
            f"{k['key_id']}  {k['scope']:<5}  {state:<7}  created {when(k['created_at'])}  "
            f"expires {when(k['expires_at'])}  last used {when(k['last_used_at'])}  {k['name'] or ''}".rstrip()
        )
    return 0


def keys_revoke(args: argparse.Namespace) -> int:
    db, url = _key_store(args, "revoke")
    try:
        revoke_key(db, args.key_id)
    finally:
        db.close()
    print(
        f"revoked key {args.key_id} in {redact(url)}; running services refuse it within 30 s", file=sys.stderr
    )
    return 0
