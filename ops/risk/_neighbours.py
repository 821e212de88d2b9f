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
(no threshold is precise enough on the labels left) or ``max_rounds``: a straggler whose
neighbours are stragglers too is reached through them. Only transactions among the nearest
neighbours of a flagged one are searched and scored, so the cost follows the flagged set,
not the window.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ops.risk._flags import MembershipCalibration, MembershipConfig, calibrate_membership

#: ``search(rows, k)``: the ``k`` nearest other points of each of ``rows`` (indices), ``-1``
#: where fewer exist.
#: the unflagged are searched this many hops of nearest neighbours from the newly flagged:
#: one hop missed the points whose own neighbours hold a flagged point that does not list them
#: (the travel bot 0.96 against 0.98 when every point was scored; two hops 0.96, the shop bot
#: 0.94 against 0.95, 0.95)
HOPS = 2
Search = Callable[[np.ndarray, int], np.ndarray]


@dataclass(frozen=True)
class NeighbourConfig:
    """How many neighbours vote, how many rounds at most, and the calibration's bar.

    ``k`` = 30: on the three synthetic worlds at 100k, 10 neighbours recovered 0.91 and
    0.93 of the travel and shop bots, 20 0.997 and 0.945, 30 0.98 and 0.95, at the same
    precision (benchmarks/README.md).
    """

    k: int = 30
    max_rounds: int = 10
    calibration: MembershipConfig = field(default_factory=MembershipConfig)


@dataclass(frozen=True)
class NeighbourVote:
    """Transactions the vote flagged, and each round's calibration (the first's table first)."""

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
    now = np.asarray(flagged, dtype=bool).copy()
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
        scored = np.flatnonzero(known & ~now)
        votes = neighbours[scored]
        share = np.zeros(n)
        share[scored] = np.where(votes >= 0, now[np.maximum(votes, 0)], False).sum(1) / cfg.k
        calibration = calibrate_membership(share, ~now, label, cfg.calibration)
        rounds.append(calibration)
        new = ~now & (share >= calibration.threshold)
        if not new.any():
            break
        now |= new
        frontier = np.flatnonzero(new)
    return NeighbourVote(now & ~np.asarray(flagged, dtype=bool), rounds)
