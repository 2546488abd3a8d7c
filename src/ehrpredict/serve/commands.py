"""``ehrpredict serve`` and ``ehrpredict keys``: the command-line side of the service.

Nothing here imports the web framework until a command runs, so ``ehrpredict --help`` works without
the ``[serve]`` extra and says which extra to install when ``serve`` is asked for without it.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from ehrpredict.errors import ConfigError

DEFAULT_AUDIT = "ehrpredict-audit.sqlite"


def _need_serve_extra() -> None:
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise ConfigError("expected the service's dependencies, got none: pip install 'ehrpredict[serve]'") from exc


CONFIG_ENV = "EHRPREDICT_SERVE_CONFIG"  # how --workers N hands the settings to its worker processes


def _context(config: dict[str, Any]) -> Any:
    from ehrpredict.serve.audit import AuditLog
    from ehrpredict.serve.auth import KeyStore, SessionSigner
    from ehrpredict.serve.context import ServeContext, ServeSettings, load_models

    keys = KeyStore.read(config["keys"])
    if not keys.entries:
        raise ConfigError(f"expected at least one key in {config['keys']}, got none")
    models = load_models([Path(p) for p in config["bundles"]])
    settings = ServeSettings(max_body_bytes=config["max_body_mb"] * 1024 * 1024, rate_limit=config["rate_limit"],
                             burst=max(1.0, config["rate_limit"] * 2), secure_cookies=config["secure_cookies"],
                             public_url=config["public_url"])
    signer = SessionSigner(bytes.fromhex(config["session_secret"]))
    dataset = Path(config["dataset"]) if config["dataset"] else None
    return ServeContext(models, keys, AuditLog(config["audit_db"]), signer, settings, dataset=dataset)


def app_from_environment() -> Any:
    """The app of one worker process (uvicorn's factory when --workers > 1)."""
    import json
    import os

    from ehrpredict.serve.app import create_app

    return create_app(_context(json.loads(os.environ[CONFIG_ENV])))


def _serve(args: argparse.Namespace) -> int:
    _need_serve_extra()
    import json
    import os
    import secrets

    import uvicorn

    from ehrpredict.serve.app import create_app

    if args.keys is None:
        raise ConfigError("expected --keys FILE: the service has no anonymous access (make a key with: ehrpredict "
                          "keys add keys.json --name NAME --scopes predict,read)")
    if args.dataset is not None and not (args.dataset / "data").is_dir():
        raise ConfigError(f"expected a MEDS dataset (with data/) for --dataset, got {args.dataset}")
    if args.workers < 1:
        raise ConfigError(f"expected --workers >= 1, got {args.workers}")
    if args.session_secret_file is not None:
        secret = args.session_secret_file.read_bytes().strip()
        if len(secret) < 32:
            raise ConfigError(f"expected a session secret of at least 32 bytes, got {len(secret)} "
                              f"({args.session_secret_file})")
    else:  # one random secret for all workers: a cookie signed by one is good in the others
        secret = secrets.token_bytes(32)
    config = {"bundles": [str(p) for p in args.bundles], "keys": str(args.keys), "audit_db": str(args.audit_db),
              "dataset": str(args.dataset) if args.dataset else None, "max_body_mb": args.max_body_mb,
              "rate_limit": args.rate_limit, "secure_cookies": args.secure_cookies, "public_url": args.public_url,
              "session_secret": secret.hex()}
    print(f"loading {len(args.bundles)} bundle(s)...", file=sys.stderr)
    ctx = _context(config)  # loads and checks every bundle and the keys now: a broken one fails before serving
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for model in ctx.models.values():
        print(f"  {model.name} (version {model.version}, {model.bundle.task.label_type})", file=sys.stderr)
    print(f"serving on http://{args.host}:{args.port} with {args.workers} worker(s) (API /v1, OpenAPI /openapi.json, "
          f"dashboard /dashboard, audit log {args.audit_db})", file=sys.stderr)
    # uvicorn's access log would print request paths (a patient page's path holds an id): ours logs
    # route templates instead (serve.middleware.Observe).
    if args.workers == 1:
        uvicorn.run(create_app(ctx), host=args.host, port=args.port, access_log=False, log_level=args.log_level)
    else:
        os.environ[CONFIG_ENV] = json.dumps(config)
        uvicorn.run("ehrpredict.serve.commands:app_from_environment", factory=True, workers=args.workers,
                    host=args.host, port=args.port, access_log=False, log_level=args.log_level)
    return 0


def _keys_add(args: argparse.Namespace) -> int:
    from ehrpredict.serve.auth import KeyStore, new_key

    store = KeyStore.read(args.file) if args.file.exists() else KeyStore(())
    key, entry = new_key(args.name, args.scopes.split(","))
    store.add(entry).write(args.file)
    print(f"added key {entry.id} ({entry.name}; scopes {', '.join(entry.scopes)}) to {args.file}", file=sys.stderr)
    print("the key (shown only now; the file keeps its salted hash):", file=sys.stderr)
    print(key)
    return 0


def _keys_list(args: argparse.Namespace) -> int:
    from ehrpredict.serve.auth import KeyStore

    for e in KeyStore.read(args.file).entries:
        print(f"{e.id}  {e.name}  {','.join(e.scopes)}  {e.created}")
    return 0


def _keys_revoke(args: argparse.Namespace) -> int:
    from ehrpredict.serve.auth import KeyStore

    KeyStore.read(args.file).revoke(args.id).write(args.file)
    print(f"revoked key {args.id} (a running server reads the file at start: restart it)", file=sys.stderr)
    return 0


def add_commands(sub: Any) -> None:
    serve = sub.add_parser("serve", help="serve bundles over HTTP: REST API, CDS Hooks and a dashboard ([serve] extra)")
    serve.add_argument("bundles", type=Path, nargs="+", metavar="BUNDLE", help="bundle directories (ehrpredict fit)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--keys", type=Path, default=None, help="API keys file (ehrpredict keys add); required")
    serve.add_argument("--audit-db", type=Path, default=Path(DEFAULT_AUDIT),
                       help=f"SQLite audit log of every prediction (default ./{DEFAULT_AUDIT})")
    serve.add_argument("--dataset", type=Path, default=None,
                       help="a MEDS dataset whose patients the dashboard's patient page can pick")
    serve.add_argument("--workers", type=int, default=1,
                       help="worker processes (each loads the bundles; rate limits and /metrics are per worker)")
    serve.add_argument("--max-body-mb", type=int, default=10, help="largest request body, in MiB (default 10)")
    serve.add_argument("--rate-limit", type=float, default=50.0,
                       help="requests per second per key on average, bursts of twice that (0: no limit; default 50)")
    serve.add_argument("--session-secret-file", type=Path, default=None,
                       help="secret for the dashboard's session cookies (default: random, sessions end on restart)")
    serve.add_argument("--secure-cookies", action="store_true", help="mark session cookies Secure (behind HTTPS)")
    serve.add_argument("--public-url", default=None, help="the dashboard's address for CDS card links")
    serve.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"))
    serve.set_defaults(handler=_serve)

    keys = sub.add_parser("keys", help="manage the service's API keys (stored hashed)")
    actions = keys.add_subparsers(dest="action")
    add = actions.add_parser("add", help="make a key; prints it once")
    add.add_argument("file", type=Path, help="keys file (created if absent)")
    add.add_argument("--name", required=True, help="who or what uses the key")
    add.add_argument("--scopes", default="predict", help="comma-separated: predict, read, admin (default predict)")
    add.set_defaults(handler=_keys_add)
    listing = actions.add_parser("list", help="list keys (ids, names, scopes)")
    listing.add_argument("file", type=Path)
    listing.set_defaults(handler=_keys_list)
    revoke = actions.add_parser("revoke", help="remove a key")
    revoke.add_argument("file", type=Path)
    revoke.add_argument("id")
    revoke.set_defaults(handler=_keys_revoke)
    keys.set_defaults(usage_of=keys)
