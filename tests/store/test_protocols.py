"""The store's Protocols and its one implementation agree: every public method of SqlStore is named
by a concern's Protocol with the same parameters, and every Protocol method is implemented."""

from __future__ import annotations

import inspect

import pytest

from sesmail import store
from sesmail.store import protocols
from sesmail.store.sql import SqlStore

CONCERNS = [protocols.IdempotencyStore, protocols.LeaseStore, protocols.SuppressionStore, protocols.SentLog,
            protocols.EventStore, protocols.TaskStore, protocols.ScheduleStore, protocols.DigestStore,
            protocols.RetentionStore, protocols.StatsStore]


def _methods(cls: type) -> dict[str, object]:
    return {name: member for name, member in inspect.getmembers(cls, inspect.isfunction) if not name.startswith("_")}


def test_every_public_method_of_the_sql_store_belongs_to_exactly_one_concern():
    owners: dict[str, list[str]] = {}
    for concern in CONCERNS:
        for name in _methods(concern):
            owners.setdefault(name, []).append(concern.__name__)
    assert {name: found for name, found in owners.items() if len(found) > 1} == {}
    assert set(_methods(SqlStore)) == set(owners) | {"close"}
    assert set(_methods(protocols.Store)) == set(owners) | {"close"}


@pytest.mark.parametrize("name", sorted(_methods(protocols.Store)))
def test_each_method_has_the_protocol_s_parameters(name):
    declared = inspect.signature(getattr(protocols.Store, name))
    implemented = inspect.signature(getattr(SqlStore, name))
    assert list(declared.parameters.values()) == list(implemented.parameters.values())
    assert declared.return_annotation == implemented.return_annotation


def test_the_protocols_are_exported_by_the_package():
    for concern in [*CONCERNS, protocols.Store]:
        assert getattr(store, concern.__name__) is concern
        assert concern.__name__ in store.__all__
