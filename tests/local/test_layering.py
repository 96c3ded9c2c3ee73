"""The local stack's modules import one way: the SES emulator's server -> its mail page and its
action table -> the shared account -> the mail store and rendering (docs/local-stack.md)."""

from __future__ import annotations

import ast
import os

from tests.conftest import ROOT

LOCAL = os.path.join(ROOT, "local")


def _imports() -> dict[str, set[str]]:
    """Module -> the local modules it imports, TYPE_CHECKING imports included."""
    found: dict[str, set[str]] = {}
    for name in os.listdir(LOCAL):
        if not name.endswith(".py"):
            continue
        with open(os.path.join(LOCAL, name), encoding="utf-8") as source:
            tree = ast.parse(source.read())
        deps: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                deps.update([node.module.split(".")[0]] if node.module else [a.name for a in node.names])
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("local."):
                deps.add((node.module or "").split(".")[1])
        found[name[:-3]] = deps
    return found


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for module in graph.get(todo.pop(), set()):
            if module not in seen:
                seen.add(module)
                todo.append(module)
    return seen


def test_no_module_of_the_local_stack_imports_itself_back():
    graph = _imports()
    assert [module for module in sorted(graph) if module in _reachable(graph, module)] == []


def test_the_actions_and_the_mail_page_never_reach_the_emulators_server():
    graph = _imports()
    for module in ("ses_actions", "ses_account", "ses_sending", "ses_batch", "ses_receivers", "ses_identities",
                   "ses_reports", "mailpage", "mailstore", "rendering"):
        assert "ses_emulator" not in _reachable(graph, module), module


def test_the_mail_store_and_rendering_import_no_other_local_module():
    graph = _imports()
    assert graph["mailstore"] == set()
    assert graph["rendering"] == set()
