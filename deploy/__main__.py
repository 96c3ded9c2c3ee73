"""`python -m deploy sync | deploy | rollback | stage`: see deploy/sync.py, deploy/converge.py, deploy/scf.py."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable

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


def _converge(command: str, plan: bool, out: Callable[[str], None] = print) -> int:
    """`make deploy` / `make rollback` through SCF's API (deploy/converge.py)."""
    from deploy import converge, desired

    env = scf.deploy_env()
    if converge.credentials_missing(env):
        out("no credentials: set TENCENTCLOUD_SECRETID and TENCENTCLOUD_SECRETKEY (and TENCENTCLOUD_SESSIONTOKEN for "
            "temporary ones) to a CAM key allowed the SCF actions docs/deploy.md lists")
        return 2
    if command == "deploy" and not scf.check_config(env, out):
        return 2
    try:
        layers, functions = desired.read(env, out, build=command == "deploy")
    except desired.SpecError as exc:
        out("serverless.yml asks for what make deploy does not do (nothing was changed):")
        for problem in exc.problems:
            out(f"  {problem}")
        return 2
    doing = "plan for" if plan else "deploying" if command == "deploy" else "rolling back"
    out(f"{doing} stage {env['STAGE']} in "
        f"{', '.join(sorted({f.region for f in functions}))} (STAGE, SESMAIL_DEPLOY_REGION)")
    deployer = converge.Deployer(converge.from_environment(env), out, plan=plan)
    try:
        return deployer.deploy(layers, functions) if command == "deploy" else deployer.rollback(functions)
    except converge.DeployError as exc:
        out(f"{command} stopped: {exc}")
        out(f"what was done before it stays ({deployer.writes} write call(s)); fix the cause and run `make "
            f"{command}` again: it reads the account first and carries on from there")
        return 1


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
    deploy = commands.add_parser("deploy", help="converge SCF to serverless.yml and the layer's, through SCF's API")
    deploy.add_argument("--plan", action="store_true", help="print what would change; change nothing")
    deploy.add_argument("--cli", action="store_true",
                        help="instead: stage, then `scf deploy` each component with Tencent's scf CLI")
    rollback = commands.add_parser("rollback", help="move back the aliases the newest deploy moved")
    rollback.add_argument("--plan", action="store_true", help="print what would move; move nothing")
    args = parser.parse_args(argv)

    if args.command == "stage":
        scf.stage()
        return 0
    if args.command == "deploy" and args.cli:
        return scf.deploy()
    if args.command in ("deploy", "rollback"):
        return _converge(args.command, args.plan)
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
