import logging

import numpy as np
import pytest

from streams.scopes import ScopeIndex
from tests.streams.helpers import world


def test_a_commune_dossier_counts_under_its_legacy_district_too() -> None:
    registry, _ = world()
    scopes = ScopeIndex(registry)
    cid = scopes.combo("00166", "ubnd-00166", "hcc-00166", "1.000001", "ho-tich")
    keys = {scopes.keys[i] for i in scopes.combos[cid]}
    assert keys == {
        "province",
        "commune:00166",
        "group:cu-cau-giay",
        "agency:ubnd-00166",
        "centre:hcc-00166",
        "procedure:1.000001",
        "field:ho-tich",
    }


def test_a_provincial_dossier_has_no_commune_scope() -> None:
    registry, _ = world()
    scopes = ScopeIndex(registry)
    cid = scopes.combo(None, "so-tu-phap-01", "hcc-01", "3.000001", "ly-lich-tu-phap")
    assert not any(scopes.keys[i].startswith(("commune:", "group:")) for i in scopes.combos[cid])


def test_unknown_codes_are_kept_counted_and_warned_once(caplog: pytest.LogCaptureFixture) -> None:
    registry, _ = world()
    scopes = ScopeIndex(registry)
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            scopes.combo("99999", "ubnd-99999", "hcc-x", "1.000001", "ho-tich")
    assert "commune:99999" in scopes.keys
    assert scopes.unknown["commune"] == 1  # the combo is made once
    assert sum("99999" in r.message for r in caplog.records) == 2  # commune and agency


def test_a_receipt_of_another_province_is_counted_here_and_flagged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry, _ = world()
    scopes = ScopeIndex(registry)
    with caplog.at_level(logging.WARNING):
        scopes.check_province("01")
        scopes.check_province("79")
        scopes.check_province("79")
    assert scopes.unknown["province"] == 2  # each receipt
    assert [r.getMessage() for r in caplog.records] == [
        "province '79' is not this province (01); counted here"
    ]


def test_expand_lists_every_scope_of_every_entry() -> None:
    registry, _ = world()
    scopes = ScopeIndex(registry)
    a = scopes.combo("00166", "ubnd-00166", "hcc-00166", "1.000001", "ho-tich")
    b = scopes.combo(None, "so-tu-phap-01", "hcc-01", "3.000001", "ly-lich-tu-phap")
    entry, scope = scopes.expand(np.array([a, b, a], dtype=np.int32))
    assert np.bincount(entry).tolist() == [7, 5, 7]
    assert set(scope[entry == 1].tolist()) == set(scopes.combos[b])


def test_minute_series_kinds() -> None:
    registry, _ = world()
    scopes = ScopeIndex(registry, minute_kinds=("province", "commune"))
    scopes.combo("00166", "ubnd-00166", "hcc-00166", "1.000001", "ho-tich")
    kept = {k for k, keep in zip(scopes.keys, scopes.in_minute_series, strict=True) if keep}
    assert kept == {"province", "commune:00166"}


def test_unknown_codes_beyond_a_bound_share_one_scope(monkeypatch) -> None:
    from streams import scopes as scopes_module

    monkeypatch.setattr(scopes_module, "MAX_UNKNOWN_CODES", 3)
    registry, _ = world()
    index = ScopeIndex(registry)
    for i in range(10):
        index.combo("00166", f"junk-agency-{i}", "hcc-00166", "1.000005", "ho-tich")
    agencies = [k for k in index.keys if k.startswith("agency:")]
    assert agencies == [f"agency:junk-agency-{i}" for i in range(3)] + ["agency:(other)"]
    assert index.unknown["agency"] == 10  # every one is counted and flagged
