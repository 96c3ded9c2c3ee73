"""`python -m deploy sync | stage | deploy` — see deploy/sync.py and deploy/scf.py."""

from __future__ import annotations

import argparse
import os
import sys

from deploy import scf


def _local_target(args: argparse.Namespace) -> None:
    """Point at the running local stack (`make dev`): its emulator and credentials, its config file."""
    from local.stack import LOCAL_SECRET_ID, LOCAL_SECRET_KEY

    os.environ.setdefault("SESMAIL_SES_ENDPOINT", "127.0.0.1:8090")
    os.environ.setdefault("SESMAIL_SES_PROTOCOL", "http")
    os.environ["TENCENTCLOUD_SECRETID"] = LOCAL_SECRET_ID
    os.environ["TENCENTCLOUD_SECRETKEY"] = LOCAL_SECRET_KEY
    os.environ.pop("TENCENTCLOUD_SESSIONTOKEN", None)
    no_proxy = os.environ.get("NO_PROXY", "")
    os.environ["NO_PROXY"] = ",".join(filter(None, [no_proxy, "127.0.0.1", os.environ["SESMAIL_SES_ENDPOINT"]]))
    if args.config is None:
        args.config = os.path.join(scf.ROOT, ".local-data", "sesmail.json")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    sync = commands.add_parser("sync", help="senders and templates to SES; writes Templates and TemplateVariables")
    sync.add_argument("--dry-run", action="store_true", help="show what would change; change nothing")
    sync.add_argument("--local", action="store_true",
                      help="sync with the running local stack (make dev) and its config file (.local-data/)")
    sync.add_argument("--config", help="the config file (default: $SESMAIL_CONFIG or sesmail.json)")
    sync.add_argument("--templates", default=scf.TEMPLATES_DIR, help="the templates folder (default templates/)")
    commands.add_parser("stage", help="prepare build/deploy/ for the scf CLI, without deploying")
    commands.add_parser("deploy", help="stage, then `scf deploy` the layer and the three functions in order")
    args = parser.parse_args(argv)

    if args.command == "stage":
        scf.stage()
        return 0
    if args.command == "deploy":
        return scf.deploy()
    from deploy import sync as sync_module

    if args.local:
        _local_target(args)
    config = args.config or os.environ.get("SESMAIL_CONFIG") or scf.CONFIG_FILE
    if not args.local and not os.environ.get("TENCENTCLOUD_SECRETID"):
        print("no SES credentials: set TENCENTCLOUD_SECRETID and TENCENTCLOUD_SECRETKEY (a CAM key allowed to use "
              "SES), and SESMAIL_REGION / SESMAIL_SES_ENDPOINT for your site; or `make sync ARGS=--local` against "
              "`make dev`", file=sys.stderr)
        return 2
    try:
        return sync_module.run(config, args.templates, dry_run=args.dry_run)
    except (sync_module.SyncError, ValueError, OSError) as exc:
        print(f"sync: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
