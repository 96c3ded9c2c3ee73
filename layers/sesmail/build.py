"""Build the layer zip that SCF unpacks into /opt (`make layer`).

SCF puts /opt on PYTHONPATH, so `sesmail/` and the runtime dependencies sit at the zip's root.
Dependencies are installed for Linux x86_64 and the runtime's Python version. `/opt` is
read-only and SCF sets PYTHONDONTWRITEBYTECODE, so without shipped `.pyc` every cold start
compiles the SDK from source; they are compiled with `--invalidation-mode unchecked-hash` by the
runtime's own Python minor version when that interpreter is on this machine, and left out (with a
message) when it is not. The zip is reproducible: same inputs, same bytes.

The zip's name says what is in it: `sesmail-layer-py3.9.zip`, and with a database driver
(`--extra`, `make layer DRIVER=…`) its name too, `sesmail-layer-py3.9-pg8000.zip`. The folder the
layer component deploys from stays `layer-py<version>`: it holds the last build.

    python layers/sesmail/build.py [--python-version 3.9] [--extra pg8000==1.31.5 --extra scramp==1.4.6] [--out build/]
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # zip's epoch: no build time in the bytes
# Never needed at run time; dropped to keep the layer small.
PRUNE = ("__pycache__", "*.dist-info/RECORD", "*.dist-info/INSTALLER", "*.dist-info/REQUESTED",
         "*.dist-info/direct_url.json", "bin")
# Database drivers the store can use: when an extra is one of them, the zip is named after it alone
# (a pin of its own dependency, such as scramp for pg8000, adds nothing to the name).
DRIVERS = ("pg8000", "pymysql", "psycopg", "psycopg2", "psycopg2-binary", "mysqlclient", "mysql-connector-python")
SIZE_GOAL = 3_000_000  # bytes: the layer with one database driver stays under 3 MB (cold start, upload)


def zip_name(python_version: str, extras: list[str] | None = None) -> str:
    """`sesmail-layer-py3.9.zip`, or with the driver (or other extras) it carries:
    `sesmail-layer-py3.9-pg8000.zip`."""
    names = []
    for extra in extras or ():
        match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", extra)
        if match:
            names.append(re.sub(r"[-_.]+", "-", match.group(1)).lower())
    drivers = [name for name in names if name in DRIVERS] or names
    return "-".join(["sesmail-layer", f"py{python_version}", *dict.fromkeys(drivers)]) + ".zip"


def find_python(version: str, override: str | None = None) -> str | None:
    """An interpreter of exactly this minor version, or None."""
    candidates = [override] if override else [
        shutil.which(f"python{version}"),
        os.path.expanduser(f"~/.pyenv/versions/{version}/bin/python"),
        *sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/{version}.*/bin/python")), reverse=True),
        sys.executable,
    ]
    for candidate in candidates:
        if not candidate or not os.path.exists(candidate):
            continue
        out = subprocess.run([candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True)
        if out.returncode == 0 and out.stdout.strip() == version:
            return candidate
    return None


def install(target: str, python_version: str, extras: list[str]) -> None:
    requirements = os.path.join(ROOT, "requirements.txt")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    "--target", target, "--no-compile", "--only-binary=:all:",
                    "--platform", "manylinux2014_x86_64", "--implementation", "cp",
                    "--python-version", python_version, "-r", requirements, *extras], check=True)


def prune(target: str) -> None:
    for pattern in PRUNE:
        for path in glob.glob(os.path.join(target, "**", pattern), recursive=True):
            if os.path.isdir(path):
                shutil.rmtree(path)
            elif os.path.exists(path):
                os.remove(path)


def compile_pyc(target: str, python: str) -> None:
    # unchecked-hash: the runtime trusts the .pyc without stat-ing the source (it cannot rewrite
    # them anyway); -j0 uses every core.
    # A fixed hash seed: marshal writes sets and frozensets in hash order, so a random seed would
    # give different bytes on every build.
    # -s/-p: the source path recorded in each .pyc is /opt/…, where SCF mounts the layer, not the
    # build directory (tracebacks read right, and the bytes do not depend on where we built).
    subprocess.run([python, "-m", "compileall", "-q", "-j0", "--invalidation-mode", "unchecked-hash",
                    "-s", target, "-p", "/opt", target],
                   check=True, stdout=subprocess.DEVNULL, env=dict(os.environ, PYTHONHASHSEED="0"))


def write_zip(source: str, out_zip: str) -> int:
    entries = []
    for directory, dirs, files in os.walk(source):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(directory, name)
            entries.append((os.path.relpath(path, source).replace(os.sep, "/"), path))
    entries.sort()
    with zipfile.ZipFile(out_zip, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for arcname, path in entries:
            info = zipfile.ZipInfo(arcname, FIXED_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            with open(path, "rb") as handle:
                archive.writestr(info, handle.read(), compresslevel=9)
    return os.path.getsize(out_zip)


def build(out_dir: str, python_version: str = "3.9", extras: list[str] | None = None,
          python: str | None = None, runtime_python: str | None = None) -> tuple[str, str, int, str | None]:
    """(layer dir, zip path, zip size, interpreter that compiled the .pyc or None)."""
    layer_dir = os.path.join(out_dir, f"layer-py{python_version}")
    shutil.rmtree(layer_dir, ignore_errors=True)
    os.makedirs(layer_dir)
    install(layer_dir, python_version, list(extras or ()))
    shutil.copytree(os.path.join(HERE, "sesmail"), os.path.join(layer_dir, "sesmail"),
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    prune(layer_dir)
    compiler = find_python(python_version, python)
    if compiler:
        compile_pyc(layer_dir, compiler)
    out_zip = os.path.join(out_dir, zip_name(python_version, extras))
    size = write_zip(layer_dir, out_zip)
    return layer_dir, out_zip, size, compiler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python-version", default="3.9", help="the SCF runtime: 3.9 or 3.10")
    parser.add_argument("--python", help="interpreter of that version that compiles the .pyc")
    parser.add_argument("--extra", action="append", default=[], help="another requirement, e.g. a DB driver")
    parser.add_argument("--out", default=os.path.join(ROOT, "build"))
    args = parser.parse_args(argv)
    _, out_zip, size, compiler = build(args.out, args.python_version, args.extra, args.python)
    verdict = "within" if size <= SIZE_GOAL else "OVER"
    print(f"{out_zip}: {size} bytes ({size / 1e6:.2f} MB; {verdict} the 3 MB goal for a layer with one database"
          " driver)")
    if compiler:
        print(f".pyc compiled by {compiler} (unchecked-hash)")
    else:
        print(f"no Python {args.python_version} here: the zip has no .pyc, so every cold start compiles from "
              f"source (about 2x slower). Build on a machine with Python {args.python_version} "
              "(docs/deploy.md, step 6).")


if __name__ == "__main__":
    main()
