"""Neighbour vote: a transaction is flagged when enough of its nearest neighbours are.

A ring's stragglers are not one node of the condensed tree: on the synthetic worlds at 100k
the travel world's booking bot drops out of a cluster of 77 % of the window one point at a
time, and most of the shop's missed timing bot is noise whose purest node on its way to the
root is mostly ordinary (benchmarks/README.md, "Detection at sizes"). Their *neighbours* in
the hybrid space are the ring all the same, and the ring is flagged already by its clusters
and branches. So every unflagged transaction near a flagged one is scored by the share of
its ``k`` nearest neighbours that are flagged, and flagged when that share reaches a
threshold calibrated on the labelled part of the window exactly as the membership flag's
(`ops.risk.calibrate_membership`: the lowest threshold at which the labelled candidates
reaching it are fraud at ``min_precision``; without labels, or with too few to judge a
majority and none against it, the fallback of a majority: `_unjudged_majority`).

The vote is repeated, each round with what the last flagged, until a round flags nothing
new or ``max_rounds``: a straggler whose
neighbours are stragglers too is reached through them. (Calibrating every round over all the
vote may flag, earlier rounds' flags included, kept flagging at the margin: travel at 100k
went through 8 rounds to 0.915 precision for 0.969 of its bot, against 0.971 for 0.958.)

Only points worth scoring are searched: in the first round those the clusterer's minimum
spanning tree joins to a flagged point (a straggler hangs off the tree next to its ring;
the tree is there already, no search), later the unflagged among the last round's flags'
own neighbours. Offline at 100k this searched 0.4-1.5 % of the window, against 15-22 % when
the flagged points' neighbours, two hops out, were searched, for the same or more of each
ring (travel 0.967 against 0.959, shop 0.950 against 0.950, marketplace 0.999 against
1.000) at precision 0.997-0.999; on the 1M shop run the vote took 4.0 s (4,986 rows
searched), the two-hop search 10.2 s (249,216 rows).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ops.risk._flags import MembershipCalibration, MembershipConfig, calibrate_membership

#: ``search(rows, k)``: the ``k`` nearest other points of each of ``rows`` (indices), ``-1``
#: where fewer exist.
Search = Callable[[np.ndarray, int], np.ndarray]


@dataclass(frozen=True)
class NeighbourConfig:
    """How many neighbours vote, how many rounds at most, and the calibration's bar.

    ``k`` = 30: on the three synthetic worlds at 100k (offline, every point scored), 10
    neighbours recovered 0.91 and 0.93 of the travel and shop bots, 20 0.997 and 0.945, 30
    0.98 and 0.95, at the same precision (benchmarks/README.md, "Neighbour vote").
    """

    k: int = 30
    max_rounds: int = 10
    calibration: MembershipConfig = field(default_factory=MembershipConfig)


@dataclass(frozen=True)
class NeighbourVote:
    """Transactions the vote flagged, and each round's calibration."""

    flagged: np.ndarray
    rounds: list[MembershipCalibration]

    def to_dict(self) -> dict[str, object]:
        """JSON-ready: the first round's threshold and table, and every round's threshold."""
        first = self.rounds[0].to_dict() if self.rounds else {"threshold": None, "table": []}
        return {
            **first,
            "rounds": [
                {"threshold": r.to_dict()["threshold"], "calibrated": r.calibrated}
                for r in self.rounds
            ],
            "n_flagged": int(self.flagged.sum()),
        }


def neighbour_vote(
    flagged: np.ndarray,
    edges: np.ndarray,
    search: Search,
    label: np.ndarray,
    config: NeighbourConfig | None = None,
) -> NeighbourVote:
    """Flag unflagged points by the share of their nearest neighbours already flagged.

    Parameters
    ----------
    flagged : ndarray of bool (n,)
        Flagged by every other reason: the first round's voters.
    edges : ndarray (m, >= 2)
        Pairs of near points (the clusterer's minimum spanning tree; further columns, such
        as weights, are ignored): the first round scores the unflagged points joined to a
        flagged one.
    search : callable
        ``search(rows, k)``: the ``k`` nearest other points of ``rows``, ``(len(rows), k)``.
    label : ndarray (n,)
        1.0 fraud, 0.0 legitimate, NaN unlabelled.
    config : NeighbourConfig, optional

    Returns
    -------
    NeighbourVote
        ``flagged``: the points this vote flagged (none of the input's).
    """
    cfg = config or NeighbourConfig()
    label = np.asarray(label, dtype=np.float64)
    first = np.asarray(flagged, dtype=bool)
    now = first.copy()
    n = len(now)
    # only the searched rows' lists are kept, each at its row's slot (-1: not searched): a
    # list for every row was n x k int64 of fresh memory, 1.7 s of explain at 3M rows
    # (benchmarks/README.md)
    slot = np.full(n, -1, dtype=np.int64)
    neighbours = np.empty((0, cfg.k), dtype=np.int64)
    pairs = np.asarray(edges)[:, :2].astype(np.int64)
    touching = now[pairs[:, 0]] != now[pairs[:, 1]]
    reach = pairs[touching].ravel()
    rounds: list[MembershipCalibration] = []
    for _ in range(cfg.max_rounds):
        rows = np.unique(reach[(reach >= 0) & ~now[np.maximum(reach, 0)]])
        rows = rows[slot[rows] < 0]
        if len(rows):
            slot[rows] = len(neighbours) + np.arange(len(rows))
            neighbours = np.vstack([neighbours, search(rows, cfg.k)])
        scored = np.flatnonzero((slot >= 0) & ~now)
        votes = neighbours[slot[scored]]
        share = np.zeros(n)
        share[scored] = np.where(votes >= 0, now[np.maximum(votes, 0)], False).sum(1) / cfg.k
        calibration = _unjudged_majority(
            calibrate_membership(share, ~now, label, cfg.calibration), cfg.calibration
        )
        rounds.append(calibration)
        new = ~now & (share >= calibration.threshold)
        if not new.any():
            break
        now |= new
        reach = neighbours[slot[new]].ravel()  # the new flags were scored: lists known
    return NeighbourVote(now & ~first, rounds)


def _unjudged_majority(
    calibration: MembershipCalibration, config: MembershipConfig
) -> MembershipCalibration:
    """Fall back to the majority where the labels are too few to judge it, and none against.

    `calibrate_membership` falls back only when the candidates as a whole hold too few
    labels; here the labelled candidates are many (every unflagged labelled transaction),
    but a ring's last stragglers are few: at 20k the travel bot's 12 misses, 6 of them
    labelled, had 0.73-0.97 of their neighbours flagged, and no threshold reached 20
    labelled. So when the labels allow no threshold, and fewer than ``min_labelled`` of
    them reach the fallback, all but a ``1 - min_precision`` share of them fraud, the
    fallback stands, as it would with no labels at all.
    """
    if np.isfinite(calibration.threshold):
        return calibration
    table = calibration.table
    at = table.loc[np.isclose(table["threshold"], config.fallback)]
    if at.empty:
        return calibration
    row = at.iloc[0]
    unjudged = row["n_labelled"] < config.min_labelled
    if unjudged and row["n_fraud"] >= config.min_precision * row["n_labelled"]:
        return MembershipCalibration(config.fallback, False, table)
    return calibration
