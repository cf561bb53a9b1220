"""The dossiers a worker has evicted, kept as 64-bit hashes of their ids.

A worker forgets a dossier ``IOC_FINISHED_RETENTION_DAYS`` after it closed.
An event for it that arrives later (a rating, or the receipt sent again by a
resynchronising system) must not open a new dossier: the store asks here
first. Eight bytes per id, in a sorted array with a small set of recent
additions, so a year of a large province's dossiers fits in tens of MiB
(12 bytes each: the hash and the closing second).
An entry is dropped after ``HORIZON`` (a restart reads no older raw events
either).
"""

from __future__ import annotations

import hashlib

import numpy as np
import numpy.typing as npt

HORIZON = 400 * 86400.0
MERGE_AT = 50_000  # recent additions kept in a set before they join the array


def id_hash(ident: str) -> int:
    """64 bits of an id, the same in every process (``hash()`` is salted per
    process, and snapshots outlive it)."""
    return int.from_bytes(hashlib.blake2b(ident.encode(), digest_size=8).digest(), "little")


class ForgottenDossiers:
    def __init__(self) -> None:
        self.keys: npt.NDArray[np.uint64] = np.zeros(0, dtype=np.uint64)
        # closing instants in whole seconds (uint32 lasts until 2106)
        self.closed: npt.NDArray[np.uint32] = np.zeros(0, dtype=np.uint32)
        self._recent: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self.keys) + len(self._recent)

    def add(self, dossier_id: str, closed_at: float) -> None:
        self._recent[id_hash(dossier_id)] = int(closed_at)
        if len(self._recent) >= MERGE_AT:
            self._merge()

    def __contains__(self, dossier_id: str) -> bool:
        key = id_hash(dossier_id)
        if key in self._recent:
            return True
        i = int(np.searchsorted(self.keys, np.uint64(key)))
        return i < len(self.keys) and int(self.keys[i]) == key

    def prune(self, now: float) -> None:
        """Drop the dossiers closed before the horizon."""
        self._merge()
        keep = self.closed >= max(now - HORIZON, 0)
        self.keys, self.closed = self.keys[keep], self.closed[keep]

    def arrays(self) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint32]]:
        """Keys and closing instants, for a snapshot."""
        self._merge()
        return self.keys, self.closed

    def load(self, keys: npt.NDArray[np.uint64], closed: npt.NDArray[np.uint32]) -> None:
        """Add what a snapshot held (sorted and unique already)."""
        if not len(self):
            self.keys, self.closed = keys.astype(np.uint64), closed.astype(np.uint32)
            return
        self._merge(keys.astype(np.uint64), closed.astype(np.uint32))

    def _merge(
        self,
        more_keys: npt.NDArray[np.uint64] | None = None,
        more_closed: npt.NDArray[np.uint32] | None = None,
    ) -> None:
        if not self._recent and more_keys is None:
            return
        recent_keys = np.fromiter(self._recent, dtype=np.uint64, count=len(self._recent))
        recent_closed = np.fromiter(self._recent.values(), dtype=np.uint32, count=len(self._recent))
        keys = np.concatenate([self.keys, *([] if more_keys is None else [more_keys]), recent_keys])
        closed = np.concatenate(
            [self.closed, *([] if more_closed is None else [more_closed]), recent_closed]
        )
        order = np.argsort(keys, kind="stable")
        keys, closed = keys[order], closed[order]
        # one entry per key: the latest addition (last after the stable sort)
        last = np.append(keys[1:] != keys[:-1], True)
        self.keys, self.closed = keys[last], closed[last]
        self._recent = {}
