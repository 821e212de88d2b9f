"""Scoring's pure pieces: vocabulary translation and the per-transaction risk join."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ops.ingest import OOV, PAD
from ops.risk import attach_risk, translate_tokens
from ops.risk._scoring import SCORE_COLUMNS


def test_tokens_follow_event_names_not_ids() -> None:
    new_vocab = ["checkout", "home", "unseen"]
    model_vocab = ["home", "search", "checkout"]
    (out,) = translate_tokens([np.array([2, 3, 4, OOV, PAD])], new_vocab, model_vocab)
    assert out.tolist() == [4, 2, OOV, OOV, PAD]


def test_translation_into_the_same_vocabulary_is_identity() -> None:
    vocab = ["a", "b", "c"]
    tokens = [np.array([2, 3, 4, 1]), np.array([], dtype=np.int64)]
    out = translate_tokens(tokens, vocab, vocab)
    assert [t.tolist() for t in out] == [t.tolist() for t in tokens]


def test_only_members_of_risky_clusters_carry_rule_text() -> None:
    clusters = pd.DataFrame(
        {"cluster": [-1, 0, 1], "risky": [False, True, False], "rule_text": ["", "(x > 1)", "y"]}
    )
    out = attach_risk(
        np.array(["t1", "t2", "t3", "t4"]),
        np.array([0, 1, -1, 7]),  # 7: a cluster the summary does not know
        np.array([0.9, 0.5, 0.0, 1.0]),
        clusters,
    )
    assert list(out.columns) == SCORE_COLUMNS
    assert out["risky"].tolist() == [True, False, False, False]
    assert out["rule_text"].tolist() == ["(x > 1)", "", "", ""]
    assert out["cluster"].tolist() == [0, 1, -1, 7]
