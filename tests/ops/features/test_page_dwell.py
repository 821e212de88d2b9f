from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ops.features import (
    DWELL_FIT_COLUMNS,
    PageDwell,
    Ragged,
    dwell_fit,
    fit_block,
    fit_page_dwell,
    session_stats,
)

VOCABULARY = ["home", "reviews", "cart"]
HOME, REVIEWS, CART = 2, 3, 4  # token ids: 0 pad, 1 out of vocabulary
# Typical seconds spent on each page: people read reviews and skim the cart.
SECONDS = {HOME: 8.0, REVIEWS: 40.0, CART: 2.0}
PATH = np.array([HOME, REVIEWS, CART, REVIEWS, CART, HOME])


def _session(rng: np.random.Generator, speed: float, shuffle: bool) -> np.ndarray:
    """Dwell of ``PATH``: ``dwell[i]`` is the time spent on page ``i - 1``."""
    spent = np.array([SECONDS[p] for p in PATH[:-1]]) * speed * rng.lognormal(0, 0.2, 5)
    if shuffle:  # the same delays, slept whatever the page
        spent = spent[[1, 0, 3, 2, 4]]
    return np.r_[0.0, spent]


def _window(n: int, seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [PATH] * n, [_session(rng, rng.lognormal(0, 0.3), False) for _ in range(n)]


def test_humans_fit_their_pages_and_shuffled_delays_do_not() -> None:
    tokens, dwell = _window(50)
    table = fit_page_dwell(tokens, dwell, VOCABULARY)
    assert table.typical["reviews"] == pytest.approx(np.log(40.0), abs=0.2)
    assert table.typical["cart"] == pytest.approx(np.log(2.0), abs=0.2)
    assert "home" in table.typical  # the first page's dwell is the second event's gap

    rng = np.random.default_rng(1)
    human, bot = _session(rng, 0.5, False), _session(rng, 0.5, True)  # a fast reader, both
    fit = dwell_fit(table, [PATH, PATH], [human, bot], VOCABULARY)
    assert list(fit.columns) == DWELL_FIT_COLUMNS
    assert fit["dwell_page_fit"][0] > 5.0 > 0.0 > fit["dwell_page_fit"][1]
    # the human's pace is taken out: their steps are near their pages' usual dwell
    assert fit["dwell_off_page"][0] < 1.5 < 5.0 < fit["dwell_off_page"][1]


def test_sessions_without_evidence_and_unknown_pages() -> None:
    table = PageDwell(typical={"reviews": np.log(40.0), "cart": np.log(2.0)}, default=0.0)
    fit = dwell_fit(
        table,
        [np.array([HOME]), np.array([], dtype=np.int64), np.array([REVIEWS, CART]), PATH[:0]],
        [np.array([0.0]), np.array([]), np.array([0.0, 30.0]), np.array([])],
        VOCABULARY,
    )
    assert fit["dwell_page_fit"].tolist() == [0.0] * 4  # fewer than two dwell steps
    assert fit["dwell_off_page"].tolist() == [1.0] * 4
    assert (fit_block(fit) == 0.0).all()  # no evidence sits at the origin of the hybrid block
    # an out-of-vocabulary page (1) gets the default (log 1 s): 1 s there and 2 s on the
    # cart are exactly usual (the last page, home, has no dwell yet)
    fit = dwell_fit(table, [np.array([1, CART, HOME])], [np.array([0.0, 1.0, 2.0])], VOCABULARY)
    assert fit["dwell_off_page"][0] == pytest.approx(1.0)
    assert fit["dwell_page_fit"][0] == pytest.approx(np.log(2.0) ** 2 / 2)


def test_scoring_reuses_the_fitted_table() -> None:
    tokens, dwell = _window(50)
    table = PageDwell.from_dict(fit_page_dwell(tokens, dwell, VOCABULARY).to_dict())
    # A batch of bots only: refitting on it would make their shuffled delays the norm.
    rng = np.random.default_rng(2)
    bots = [_session(rng, 1.0, True) for _ in range(20)]
    scored = dwell_fit(table, [PATH] * 20, bots, VOCABULARY)
    refitted = dwell_fit(
        fit_page_dwell([PATH] * 20, bots, VOCABULARY), [PATH] * 20, bots, VOCABULARY
    )
    assert (scored["dwell_page_fit"] < 0).all()
    assert (refitted["dwell_page_fit"] > 0).mean() > 0.5
    # one row scored alone is the same row scored in the batch: nothing depends on the batch
    alone = dwell_fit(table, [PATH], bots[:1], VOCABULARY)
    assert alone.iloc[0].tolist() == pytest.approx(scored.iloc[0].tolist())


def test_session_stats_carry_the_dwell_fit_for_rules() -> None:
    tokens, dwell = _window(10)
    table = fit_page_dwell(tokens, dwell, VOCABULARY)
    stats = session_stats(tokens, dwell, VOCABULARY, page_dwell=table).to_pandas()
    assert set(DWELL_FIT_COLUMNS) <= set(stats.columns)
    assert (stats["dwell_page_fit"] > 0).all()
    assert not set(DWELL_FIT_COLUMNS) & set(session_stats(tokens, dwell, VOCABULARY).column_names)


def test_ragged_rows_give_what_lists_of_arrays_give() -> None:
    tokens, dwell = _window(30)
    tokens = [*tokens, np.zeros(0, np.int64), np.array([HOME])]  # an empty and a 1-step session
    dwell = [d.astype(np.float32) for d in [*dwell, np.zeros(0), np.array([3.0])]]  # as loaded
    offsets = np.r_[0, np.cumsum([len(t) for t in tokens])]
    rag_tokens = Ragged(np.concatenate(tokens).astype(np.int64), offsets)
    rag_dwell = Ragged(np.concatenate(dwell), offsets)
    assert [t.tolist() for t in rag_tokens] == [t.tolist() for t in tokens]
    table = fit_page_dwell(tokens, dwell, VOCABULARY)
    assert fit_page_dwell(rag_tokens, rag_dwell, VOCABULARY) == table
    expected = dwell_fit(table, tokens, dwell, VOCABULARY)
    pd.testing.assert_frame_equal(dwell_fit(table, rag_tokens, rag_dwell, VOCABULARY), expected)
    stats = session_stats(rag_tokens, rag_dwell, VOCABULARY, page_dwell=table)
    assert stats.equals(session_stats(tokens, dwell, VOCABULARY, page_dwell=table))


def test_each_session_is_measured_by_its_own_steps_alone() -> None:
    """The definitions, session by session, against the one pass over all of them."""
    rng = np.random.default_rng(4)
    tokens = [rng.integers(0, 2 + len(VOCABULARY), rng.integers(0, 9)) for _ in range(200)]
    dwell = [rng.lognormal(0, 1, len(t)).astype(np.float32) for t in tokens]
    table = fit_page_dwell(tokens, dwell, VOCABULARY)
    fit = dwell_fit(table, tokens, dwell, VOCABULARY)
    typical = np.r_[table.default, table.default, [table.typical[p] for p in VOCABULARY]]
    for i, (t, d) in enumerate(zip(tokens, dwell, strict=True)):
        x = np.log(np.maximum(d[1:].astype(np.float64), 0.1))
        page = typical[t[:-1]]  # the page each wait was spent on
        xc, tc = x - x.mean() if len(x) else x, page - page.mean() if len(x) else page
        assert fit["dwell_page_fit"][i] == pytest.approx(float((xc * tc).sum()), abs=1e-12)
        off = np.exp(np.abs(xc - tc).mean()) if len(x) else 1.0
        assert fit["dwell_off_page"][i] == pytest.approx(off, abs=1e-12)


def test_each_page_fit_is_the_median_log_dwell_spent_on_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Against every step's log dwell grouped by page; in blocks of sessions, as in one."""
    rng = np.random.default_rng(5)
    tokens = [rng.integers(0, 2 + len(VOCABULARY), rng.integers(0, 9)) for _ in range(301)]
    # some waits under the floor, and even and odd counts per page
    dwell = [rng.lognormal(0, 1.5, len(t)).astype(np.float32) for t in tokens]
    table = fit_page_dwell(tokens, dwell, VOCABULARY)
    page = np.concatenate([t[:-1] for t in tokens])  # the page each wait was spent on
    logs = np.log(np.maximum(np.concatenate([d[1:] for d in dwell]).astype(np.float64), 0.1))
    assert table.default == float(np.median(logs))
    for token, name in enumerate(VOCABULARY, start=2):
        assert table.typical[name] == float(np.median(logs[page == token]))
    assert fit_page_dwell([np.array([HOME])], [np.array([1.0])], VOCABULARY) == PageDwell({}, 0.0)

    whole = dwell_fit(table, tokens, dwell, VOCABULARY)
    monkeypatch.setattr("ops.features._page_dwell._FIT_SESSIONS", 7)
    pd.testing.assert_frame_equal(dwell_fit(table, tokens, dwell, VOCABULARY), whole)
