"""Replay batching and pacing (pure): a shuffled replay spreads a dossier's
events over many messages; a paced one sends events when they are due."""

from __future__ import annotations

from simulators.replay import PACE_WINDOW, SHUFFLED_BATCH, batches, shuffled_with_repeats


def load(n: int, step: float = 1.0) -> list[tuple[float, str, bytes]]:
    return [(1000.0 + i * step, f"D{i % 7}", f"line-{i}".encode()) for i in range(n)]


def test_a_shuffled_replay_sends_small_batches() -> None:
    events = shuffled_with_repeats(load(1000), seed=3, repeats=0.1)
    sent = list(batches(events, SHUFFLED_BATCH, None, 1000.0))
    assert [e for b in sent for e in b] == events  # every event, in the shuffled order
    assert max(len(b) for b in sent) == SHUFFLED_BATCH
    # one dossier's events come in many messages
    assert sum(1 for b in sent if any(key == "D3" for _, key, _ in b)) > 10


def test_a_paced_replay_groups_only_what_is_due_together() -> None:
    events = load(100, step=1.0)  # one event a second
    sent = list(batches(events, 5000, 10.0, 1000.0))  # ten times faster: 0.1 s apart
    assert all(len(b) == 1 for b in sent)  # never the first 5000 at once
    fast = list(batches(events, 5000, 1000.0, 1000.0))  # 1 ms apart: 50 per window
    assert len(fast[0]) == int(PACE_WINDOW / 0.001) + 1
    assert [e for b in fast for e in b] == events
