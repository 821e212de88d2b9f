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
reaching it are fraud at ``min_precision``; without labels, the fallback of a majority).

The vote is repeated, each round with what the last flagged, until a round flags nothing
new or ``max_rounds``: a straggler whose neighbours are stragglers too is reached through
them. Every round is calibrated over all the points the vote may flag, those it flagged in
earlier rounds included, so that what the vote flags *as a whole* keeps ``min_precision`` on
the labels (calibrated on the points left alone, later rounds ran out of labels: travel's
bot 0.96 and shop's 0.950, against 0.97 and 0.952, offline on the 100k runs). Only points
near a newly flagged one are searched and scored (`HOPS`), so the cost follows the flagged
set, not the window.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ops.risk._flags import MembershipCalibration, MembershipConfig, calibrate_membership

#: the unflagged are searched this many hops of nearest neighbours from the newly flagged:
#: a point whose neighbours hold a flagged one need not be among that one's neighbours
#: (offline at 100k: one hop flagged 0.937 of the shop bot, two 0.950, every point scored
#: 0.950; the travel bot 0.96 with one or two, 0.98 with every point)
HOPS = 2
#: ``search(rows, k)``: the ``k`` nearest other points of each of ``rows`` (indices), ``-1``
#: where fewer exist.
Search = Callable[[np.ndarray, int], np.ndarray]


@dataclass(frozen=True)
class NeighbourConfig:
    """How many neighbours vote, how many rounds at most, and the calibration's bar.

    ``k`` = 30: on the three synthetic worlds at 100k (offline, exact neighbours, every point
    scored), 10 neighbours recovered 0.91 and 0.93 of the travel and shop bots, 20 0.997
    and 0.945, 30 0.98 and 0.95, the flagged set's precision 0.996-0.998 throughout.
    """

    k: int = 30
    max_rounds: int = 10
    calibration: MembershipConfig = field(default_factory=MembershipConfig)


@dataclass(frozen=True)
class NeighbourVote:
    """Transactions the vote flagged, and each round's calibration, the last one's last."""

    flagged: np.ndarray
    rounds: list[MembershipCalibration]

    def to_dict(self) -> dict[str, object]:
        """JSON-ready: every round's threshold, and the last round's threshold and table.

        The last round's table is the precision and recall over thresholds of the neighbour
        shares as they ended (when the vote stopped because it flagged nothing new).
        """
        last = self.rounds[-1].to_dict() if self.rounds else {"threshold": None, "table": []}
        return {
            **last,
            "rounds": [
                {"threshold": r.to_dict()["threshold"], "calibrated": r.calibrated}
                for r in self.rounds
            ],
            "n_flagged": int(self.flagged.sum()),
        }


def neighbour_vote(
    flagged: np.ndarray,
    search: Search,
    label: np.ndarray,
    config: NeighbourConfig | None = None,
) -> NeighbourVote:
    """Flag unflagged points by the share of their nearest neighbours already flagged.

    Parameters
    ----------
    flagged : ndarray of bool (n,)
        Flagged by every other reason: the first round's voters.
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
    neighbours = np.full((n, cfg.k), -1, dtype=np.int64)
    known = np.zeros(n, dtype=bool)

    def learn(rows: np.ndarray) -> None:
        rows = rows[~known[rows]]
        if len(rows):
            neighbours[rows] = search(rows, cfg.k)
            known[rows] = True

    rounds: list[MembershipCalibration] = []
    frontier = np.flatnonzero(now)
    for _ in range(cfg.max_rounds):
        learn(frontier)  # whom the newly flagged are near: the unflagged worth scoring
        near = neighbours[frontier].ravel()
        near = np.unique(near[near >= 0])
        learn(near)
        for _hop in range(HOPS - 1):
            near = neighbours[near].ravel()
            near = np.unique(near[near >= 0])
            learn(near)
        scored = np.flatnonzero(known & ~first)
        votes = neighbours[scored]
        share = np.zeros(n)
        share[scored] = np.where(votes >= 0, now[np.maximum(votes, 0)], False).sum(1) / cfg.k
        calibration = calibrate_membership(share, ~first, label, cfg.calibration)
        rounds.append(calibration)
        new = ~now & (share >= calibration.threshold)
        if not new.any():
            break
        now |= new
        frontier = np.flatnonzero(new)
    return NeighbourVote(now & ~first, rounds)
