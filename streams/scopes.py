"""Scope keys and the sets of scopes a dossier counts under.

A scope key is ``province``, ``commune:<code>``, ``agency:<id>``,
``centre:<id>``, ``procedure:<code>``, ``field:<id>`` or ``group:<id>``. A
dossier counts under one *combo*: the tuple of scope indices given by its
commune, agency, centre, procedure, field and the groups of its commune.
Dossiers carry a combo id, and counters are expanded to scopes with numpy.

Codes the registry lacks are kept and counted under the code given, and
flagged (a counter and one warning per code): the configuration often lags
reality.
"""

from __future__ import annotations

import logging
from collections import Counter

import numpy as np
import numpy.typing as npt

from ioc.registry import Registry

log = logging.getLogger(__name__)
# Distinct unknown codes a worker keeps by name, per kind; later ones are
# counted under ``<kind>:(other)``. A configuration that lags reality has a
# few; thousands are junk, and each scope costs its windows' memory here and
# a channel on every API.
MAX_UNKNOWN_CODES = 1000
OTHER = "(other)"
# commune (None when a receipt names none), agency, centre, procedure, field
Attributes = tuple[str | None, str, str, str, str]


class ScopeIndex:
    def __init__(
        self, registry: Registry, minute_kinds: tuple[str, ...] = ("province", "commune", "agency")
    ) -> None:
        self.registry = registry
        self.minute_kinds = frozenset(minute_kinds)
        self.keys: list[str] = []
        # scopes kept in the 1-minute series, by index
        self._minute = np.zeros(64, dtype=bool)
        self._index: dict[str, int] = {}
        self.combos: list[tuple[int, ...]] = []
        self._combo_ids: dict[Attributes, int] = {}
        # (commune, agency, centre, procedure, field) of each combo, by id
        self.combo_attributes: list[Attributes] = []
        self._matrix = np.full((0, 8), -1, dtype=np.int32)
        self._matrix_rows = 0
        self.unknown: Counter[str] = Counter()
        self._warned: set[str] = set()
        self._unknown_codes: dict[str, set[str]] = {}
        self.province = self.intern("province")

    def __len__(self) -> int:
        return len(self.keys)

    def intern(self, key: str) -> int:
        idx = self._index.get(key)
        if idx is None:
            idx = len(self.keys)
            self.keys.append(key)
            self._index[key] = idx
            if idx >= len(self._minute):
                self._minute = np.concatenate([self._minute, np.zeros(len(self._minute), bool)])
            self._minute[idx] = key.partition(":")[0] in self.minute_kinds
        return idx

    @property
    def in_minute_series(self) -> npt.NDArray[np.bool_]:
        """Per scope index: kept at 1-minute resolution."""
        return self._minute[: len(self.keys)]

    def get(self, key: str) -> int | None:
        return self._index.get(key)

    def check_province(self, code: str) -> None:
        """A deployment serves one province: a receipt naming another is
        kept and counted under this one, and flagged like any unknown code."""
        if code != self.registry.province_code:
            here = self.registry.province_code
            self._flag_unknown("province", code, f"is not this province ({here}); counted here")

    def _flag_unknown(
        self, kind: str, code: str, note: str = "is not in the province registry; counted as given"
    ) -> None:
        self.unknown[kind] += 1
        key = f"{kind}:{code}"
        if key not in self._warned:
            self._warned.add(key)
            log.warning("%s %r %s", kind, code, note)

    def _scope(self, kind: str, code: str) -> int:
        if not self.registry.knows(kind, code):
            self._flag_unknown(kind, code)
            named = self._unknown_codes.setdefault(kind, set())
            if code not in named:
                if len(named) >= MAX_UNKNOWN_CODES:
                    if f"{kind}:{OTHER}" not in self._warned:
                        self._warned.add(f"{kind}:{OTHER}")
                        log.warning(
                            "more than %d unknown %s codes: the next ones are counted as %s:%s",
                            MAX_UNKNOWN_CODES,
                            kind,
                            kind,
                            OTHER,
                        )
                    return self.intern(f"{kind}:{OTHER}")
                named.add(code)
        return self.intern(f"{kind}:{code}")

    def combo(
        self,
        commune: str | None,
        agency: str,
        centre: str,
        procedure: str,
        field: str,
    ) -> int:
        """The combo id of a dossier with these attributes."""
        key = (commune, agency, centre, procedure, field)
        cid = self._combo_ids.get(key)
        if cid is not None:
            return cid
        scopes = [self.province]
        if commune is not None:
            scopes.append(self._scope("commune", commune))
            for group in self.registry.groups_of_commune.get(commune, ()):
                scopes.append(self.intern(f"group:{group}"))
        scopes.append(self._scope("agency", agency))
        scopes.append(self._scope("centre", centre))
        scopes.append(self._scope("procedure", procedure))
        scopes.append(self._scope("field", field))
        cid = len(self.combos)
        self.combos.append(tuple(scopes))
        self.combo_attributes.append(key)
        self._combo_ids[key] = cid
        return cid

    def matrix(self) -> npt.NDArray[np.int32]:
        """Combo id -> scope indices, padded with -1 (grown as combos appear)."""
        n = len(self.combos)
        if self._matrix_rows < n:
            width = max(self._matrix.shape[1], *(len(c) for c in self.combos[self._matrix_rows :]))
            if n > len(self._matrix) or width > self._matrix.shape[1]:
                grown = np.full((max(n, 2 * len(self._matrix), 64), width), -1, dtype=np.int32)
                grown[: self._matrix_rows, : self._matrix.shape[1]] = self._matrix[
                    : self._matrix_rows
                ]
                self._matrix = grown
            for i in range(self._matrix_rows, n):
                self._matrix[i, : len(self.combos[i])] = self.combos[i]
            self._matrix_rows = n
        return self._matrix[:n]

    def expand(
        self, combos: npt.NDArray[np.int32]
    ) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.int32]]:
        """For entries tagged with combo ids: (entry index, scope index) pairs
        for every scope each entry counts under."""
        m = self.matrix()[combos]
        entry, col = np.nonzero(m >= 0)
        return entry, m[entry, col]
