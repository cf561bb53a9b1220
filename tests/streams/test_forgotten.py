import numpy as np

from streams import forgotten as module
from streams.forgotten import HORIZON, ForgottenDossiers, id_hash


def test_ids_are_found_before_and_after_they_are_merged(monkeypatch) -> None:
    monkeypatch.setattr(module, "MERGE_AT", 3)
    gone = ForgottenDossiers()
    for i in range(7):
        gone.add(f"H01-{i}", float(i))
    assert len(gone.keys) == 6 and len(gone) == 7  # two merges, one recent
    assert all(f"H01-{i}" in gone for i in range(7))
    assert "H01-7" not in gone and "" not in ForgottenDossiers()
    assert (np.diff(gone.keys.astype(np.float64)) > 0).all()


def test_the_hash_is_stable_across_processes() -> None:
    # a fixed value: ``hash()`` would change with PYTHONHASHSEED, and
    # snapshots written by one process are read by another
    assert id_hash("000.00.24.H22-260316-0001") == 0x14268A00A548AB33


def test_prune_drops_what_closed_before_the_horizon() -> None:
    gone = ForgottenDossiers()
    gone.add("old", 0.0)
    gone.add("new", HORIZON + 10)
    gone.prune(HORIZON + 20)
    assert "old" not in gone and "new" in gone


def test_a_snapshot_round_trip_keeps_the_latest_closing() -> None:
    gone = ForgottenDossiers()
    gone.add("D1", 5.0)
    keys, closed = gone.arrays()
    again = ForgottenDossiers()
    again.load(keys.copy(), closed.copy())
    again.add("D1", 9.0)
    assert len(again.arrays()[0]) == 1 and again.arrays()[1].tolist() == [9.0]
