"""Pure pieces of scoring new transactions against a fitted champion."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ops.ingest import FIRST_TOKEN, OOV, PAD

SCORE_COLUMNS = ["txn_id", "cluster", "probability", "risky", "rule_text"]


def translate_tokens(
    tokens: Sequence[np.ndarray], source: list[str], target: list[str]
) -> list[np.ndarray]:
    """Token ids of ``source``'s vocabulary re-expressed in ``target``'s (the model's).

    New data gets its own frequency-ordered vocabulary at ingest; the encoder only knows the
    ids of the window it was trained on, and an event it never saw is out-of-vocabulary.

    Examples
    --------
    >>> translate_tokens([np.array([2, 3, 1, 0])], ["b", "z"], ["a", "b"])
    [array([3, 1, 1, 0])]
    """
    position = {name: FIRST_TOKEN + i for i, name in enumerate(target)}
    lookup = np.array([PAD, OOV, *(position.get(name, OOV) for name in source)], dtype=np.int64)
    return [lookup[np.asarray(t, dtype=np.int64)] for t in tokens]


def attach_risk(
    txn_ids: np.ndarray,
    labels: np.ndarray,
    probabilities: np.ndarray,
    clusters: pd.DataFrame,
) -> pd.DataFrame:
    """One row per transaction with its cluster's risk flag and rule text (noise is never risky).

    ``clusters`` is the champion's per-cluster summary: ``cluster``, ``risky``, ``rule_text``.
    """
    summary = clusters.set_index("cluster")
    risky = pd.Series(labels).map(summary["risky"]).fillna(False).astype(bool).to_numpy()
    rule_text = pd.Series(labels).map(summary["rule_text"]).fillna("").astype(str).to_numpy()
    return pd.DataFrame(
        {
            "txn_id": np.asarray(txn_ids, dtype=str),
            "cluster": np.asarray(labels, dtype=np.int64),
            "probability": np.asarray(probabilities, dtype=np.float64),
            "risky": risky & (np.asarray(labels) >= 0),
            "rule_text": np.where(risky, rule_text, ""),
        }
    )[SCORE_COLUMNS]
