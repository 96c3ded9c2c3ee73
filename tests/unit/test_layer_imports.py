"""The arrows point down (docs/architecture.md): functions -> routes -> services -> store, with the
foundations below everything. Every import counts, the lazy ones inside functions too, so a
shortcut that only runs on some requests is caught as well."""

from __future__ import annotations

import ast
import os

import pytest

from tests.conftest import ROOT

LAYER = os.path.join(ROOT, "layers", "sesmail", "sesmail")

# One tier per module of the layer; a module may import its own tier and the tiers below it.
ROUTES = {"sending", "batching", "schedules", "digest", "webhook", "preferences", "timers", "reconcile", "stats",
          "guard"}
SERVICES = {"http", "policy", "idempotency", "leases", "transport", "ses", "smtp", "ratelimit", "redis_client",
            "events", "topics", "rules", "validation", "envelopes", "config"}
STORE = {"store"}
FOUNDATIONS = {"errors", "log", "deadline", "addresses"}
TIERS = [ROUTES, SERVICES, STORE, FOUNDATIONS]
OUTSIDE = ("local", "functions", "deploy", "bench", "tests")


def _parse(path: str) -> ast.Module:
    with open(path, encoding="utf-8") as source:
        return ast.parse(source.read(), path)


def _layer_modules() -> dict[str, str]:
    """Top-level name ('sending', 'store') -> each file of it, as 'store/sql.py'."""
    found: dict[str, str] = {}
    for folder, _dirs, files in os.walk(LAYER):
        for name in files:
            if (name.endswith(".py") and name != "__init__.py") or (folder != LAYER and name == "__init__.py"):
                relative = os.path.relpath(os.path.join(folder, name), LAYER)
                found[relative] = relative.split(os.sep)[0].removesuffix(".py")
    return found


def _imported(path: str, top: str) -> set[str]:
    """The layer's top-level modules `path` imports (relative or absolute), and outside packages."""
    names: set[str] = set()
    inside_store = top == "store"
    for node in ast.walk(_parse(path)):
        if isinstance(node, ast.ImportFrom) and node.level:
            if inside_store and node.level == 1:
                continue  # store/ among itself
            if node.module:
                names.add(node.module.split(".")[0])
            else:
                names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0] if not node.module.startswith("sesmail.")
                      else node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
    return names


def _tier(module: str) -> int:
    return next(index for index, tier in enumerate(TIERS) if module in tier)


def test_every_module_of_the_layer_has_a_tier():
    # A new module must be placed (here and in docs/architecture.md) before it can be imported.
    placed = set().union(*TIERS)
    assert sorted({top for top in _layer_modules().values()} - placed) == []


@pytest.mark.parametrize("relative", sorted(_layer_modules()))
def test_a_module_imports_only_its_own_tier_and_the_tiers_below(relative):
    top = _layer_modules()[relative]
    mine = _tier(top)
    placed = set().union(*TIERS)
    upward = sorted(name for name in _imported(os.path.join(LAYER, relative), top)
                    if name in placed and name != top and _tier(name) < mine)
    assert upward == [], f"{relative} imports {upward} from a tier above its own"


@pytest.mark.parametrize("relative", sorted(_layer_modules()))
def test_the_layer_never_imports_the_code_around_it(relative):
    top = _layer_modules()[relative]
    assert sorted(_imported(os.path.join(LAYER, relative), top) & set(OUTSIDE)) == []


def test_services_import_no_route_and_the_store_no_service():
    # Spelled out, as the two arrows a shortcut would most likely bend.
    for relative, top in _layer_modules().items():
        names = _imported(os.path.join(LAYER, relative), top)
        if top in SERVICES:
            assert not names & ROUTES, relative
        if top in STORE:
            assert not names & (ROUTES | SERVICES), relative


@pytest.mark.parametrize("function", ["send", "batch", "webhook"])
def test_a_function_imports_only_the_layer(function):
    path = os.path.join(ROOT, "functions", function, "index.py")
    names = set()
    for node in ast.walk(_parse(path)):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
    assert names <= {"sesmail", "os", "json", "__future__"}, f"{function}/index.py imports {sorted(names)}"
