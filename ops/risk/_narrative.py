"""Plain-language descriptions of risky clusters: how their sessions look, and one sentence.

Investigators act on a sentence, not on a tree: the best rule, the typical path and pace, and
what labels or coordination say, joined into one line per cluster.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ops.features import path_keys
from ops.risk._rules import Rule, format_seconds, json_float


@dataclass(frozen=True)
class Behaviour:
    """What a cluster's sessions look like, from sequence statistics."""

    n: int
    typical_path: tuple[str, ...] = ()
    typical_path_share: float = float("nan")
    same_path_share: float = float("nan")
    median_dwell: float = float("nan")
    median_duration: float = float("nan")
    median_events: float = float("nan")
    #: the typical path is the whole session (not just its start) for most members
    complete: bool = False

    def describe(self) -> str:
        """Describe the shared path and its pace in words.

        For example ``"88% follow home → item → checkout, reaching checkout in a median of 18 s
        with a median of 0.6 s between pages"``; ``"start with"`` when only a prefix is shared.
        """
        bits = []
        if self.typical_path:
            verb = "follow" if self.complete else "start with"
            bits.append(f"{self.typical_path_share:.0%} {verb} " + " → ".join(self.typical_path))
        if not math.isnan(self.median_duration):
            dur = format_seconds(self.median_duration)
            if self.typical_path and self.complete:
                bits.append(f"reaching {self.typical_path[-1]} in a median of {dur}")
            else:
                bits.append(f"sessions lasting a median of {dur}")
        text = ", ".join(bits)
        if not math.isnan(self.median_dwell):
            gap = f"a median of {format_seconds(self.median_dwell)} between pages"
            text = f"{text} with {gap}" if text else gap
        return text

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "n": self.n,
            "typical_path": list(self.typical_path),
            "typical_path_share": json_float(self.typical_path_share),
            "same_path_share": json_float(self.same_path_share),
            "median_dwell": json_float(self.median_dwell),
            "median_duration": json_float(self.median_duration),
            "median_events": json_float(self.median_events),
            "complete": self.complete,
            "text": self.describe(),
        }


#: The columns `describe_behaviour` reads.
BEHAVIOUR_COLUMNS = ("path", "median_dwell", "duration", "n_events")


def describe_behaviour(
    members: pd.DataFrame, *, min_share: float = 0.5, max_len: int = 8
) -> Behaviour:
    """Sequence profile of one cluster's transactions.

    ``members`` may hold ``path`` (the list of page names, as `ops.features.session_stats`
    writes it; names may hold any character), ``median_dwell`` and ``duration`` (seconds),
    ``n_events``; absent columns leave their fields NaN. The typical path is the
    longest prefix shared by at least ``min_share`` of members (up to ``max_len``
    events), which survives the odd extra click that kills an exact-match mode.
    """

    def med(col: str) -> float:
        return (
            float(pd.to_numeric(members[col], errors="coerce").median())
            if col in members
            else float("nan")
        )

    typical: tuple[str, ...] = ()
    typical_share = same_share = float("nan")
    modal: tuple[str, ...] | None = None
    if "path" in members and len(members):
        paths = [p or () for p in path_keys(members["path"])]
        n = len(paths)
        modal, count = Counter(paths).most_common(1)[0]
        same_share = count / n
        for k in range(1, max_len + 1):
            prefixes = Counter(p[:k] for p in paths if len(p) >= k)
            if not prefixes:
                break
            prefix, count = prefixes.most_common(1)[0]
            if count / n < min_share:
                break
            typical, typical_share = prefix, count / n
    return Behaviour(
        n=len(members),
        typical_path=typical,
        typical_path_share=typical_share,
        same_path_share=same_share,
        median_dwell=med("median_dwell"),
        median_duration=med("duration"),
        median_events=med("n_events"),
        complete=bool(typical) and typical == modal,
    )


def narrate(
    cluster_summary: Mapping[str, Any] | pd.Series,
    rules: Sequence[Rule],
    behaviour: Behaviour | None = None,
) -> str:
    """One sentence an investigator can act on.

    ``cluster_summary`` is a row of `ops.risk.assess_risk` (``size``, and when
    present ``n_labelled``, ``fraud_rate``, ``coordination_flag``,
    ``coordination_score``). Uses the best rule only; the others are in the table.
    E.g. "412 transactions: account at most 2 days old, ship-to country differs
    from card country, home → item → checkout (90% start this way), a median of
    0.6 s between pages; 96% confirmed fraud where labelled (50 labelled)."
    """
    s = dict(cluster_summary)
    size = int(s.get("size", 0))
    head = f"{size:,} transaction{'s' if size != 1 else ''}"
    body = []
    if rules:
        body.append(rules[0].describe())
    if behaviour is not None and behaviour.describe():
        body.append(behaviour.describe())
    n_lab = int(s.get("n_labelled", 0) or 0)
    rate = s.get("fraud_rate", float("nan"))
    if n_lab and rate == rate:
        tail = f"{rate:.0%} confirmed fraud where labelled ({n_lab:,} labelled)"
    else:
        tail = "no labels yet"
    if s.get("coordination_flag"):
        tail += f"; coordinated (score {float(s.get('coordination_score', 0)):.2f})"
    text = head + (": " + ", ".join(body) if body else "") + "; " + tail + "."
    return text
