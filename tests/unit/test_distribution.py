"""The Citus design (core/distribution.py) names every table of the models, and each
distribution column it names exists: a new table cannot be added without deciding its place."""

from __future__ import annotations

from core.distribution import DISTRIBUTION, KINDS
from core.models import Base


def test_every_table_has_a_decided_distribution() -> None:
    assert set(DISTRIBUTION) == set(Base.metadata.tables)


def test_each_named_distribution_column_exists_and_each_gap_says_what_changes() -> None:
    for name, placement in DISTRIBUTION.items():
        assert placement.kind in KINDS, name
        table = Base.metadata.tables[name]
        if placement.column is None:
            assert placement.change, f"{name}: no distribution column and no change named"
        else:
            assert placement.column in table.columns, f"{name}.{placement.column}"
