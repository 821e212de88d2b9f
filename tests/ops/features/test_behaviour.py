from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from ops.features import path_codes, path_keys, session_stats
from ops.risk import assess_risk, describe_behaviour

#: page names a shop may really have: separators, quotes and markup are all one page each
ODD_PAGES = ["cart > review", "a|b", "shoes, red", 'say "hi"', "it's", "<b>deal</b>"]


def test_pace_and_path_in_human_units() -> None:
    stats = session_stats(
        [np.array([2, 3, 4]), np.array([2]), np.array([1, 3])],
        [np.array([0.0, 1.0, 3.0]), np.array([0.0]), np.array([0.0, 0.6])],
        ["home", "item", "checkout"],
    ).to_pandas()
    paths = [list(p) for p in stats["path"]]
    assert paths == [["home", "item", "checkout"], ["home"], ["<oov>", "item"]]
    assert stats["median_dwell"].tolist()[0] == 2.0 and np.isnan(stats["median_dwell"][1])
    assert stats["dwell_cv"][0] == pytest.approx(0.5) and stats["dwell_cv"][2] == 0.0
    assert stats["duration"].tolist() == pytest.approx([4.0, 0.0, 0.6])
    assert stats["n_events"].tolist() == [3, 1, 2]


def test_page_names_holding_separators_quotes_and_markup_stay_whole(tmp_path: Path) -> None:
    vocabulary = ODD_PAGES
    ring = np.arange(2, 2 + len(vocabulary))  # every odd page once, in order
    tokens = [ring] * 6 + [np.array([2, 3])] * 2
    dwell = [np.full(len(t), 0.5) for t in tokens]
    stats = session_stats(tokens, dwell, vocabulary).to_pandas()
    assert list(stats["path"][0]) == ODD_PAGES
    # through Parquet, as the behaviour table travels between stages
    stats.to_parquet(tmp_path / "behaviour.parquet")
    back = pd.read_parquet(tmp_path / "behaviour.parquet")
    assert [list(p) for p in back["path"]] == [list(p) for p in stats["path"]]

    behaviour = describe_behaviour(back)
    assert behaviour.typical_path == tuple(ODD_PAGES)
    assert behaviour.typical_path_share == pytest.approx(6 / 8)
    assert " → ".join(ODD_PAGES) in behaviour.describe()

    frame = back.assign(cluster=0, label=np.nan, ts=np.arange(len(back), dtype=float))
    risk = assess_risk(frame)
    assert risk.loc[0, "modal_path"] == ODD_PAGES
    assert risk.loc[0, "path_share"] == pytest.approx(6 / 8)


def test_path_codes_count_whole_paths_as_path_keys_does() -> None:
    odd = ["a>b", "c|d", 'say "hi", <b>', "a", "b"]
    rng = np.random.default_rng(0)
    paths: list[object] = [
        np.array(rng.choice(odd, rng.integers(0, 4)), dtype=object) for _ in range(300)
    ]
    # a plain string is one page; missing paths; pages that are not text count by their names
    paths += ["a>b", None, float("nan"), [], ["a", "b"], ["a>b"], [1, "1"], ["1", "1"]]
    # all of them, then only the arrays and lists (as Parquet hands a list column back)
    for rows in (paths, [*paths[:300], [], ["a", "b"], [1, "1"], ["1", "1"]]):
        series = pd.Series(rows, dtype=object)
        codes, first = path_codes(series)
        expected, uniques = pd.factorize(pd.Series(path_keys(series), dtype=object))
        assert codes.tolist() == expected.tolist()
        assert [path_keys(series.iloc[[i]])[0] for i in first] == list(uniques)
        assert codes[-2] == codes[-1] and codes[-4] != codes[-3]
        if rows is paths:
            assert codes[-8] == codes[-3] and codes[-6] != codes[-5]


@pytest.mark.parametrize("longest", [3, 40])
def test_path_codes_of_short_and_long_paths_count_whole_paths(longest: int) -> None:
    """Paths short enough to be numbers, and paths too long for 63 bits, code alike."""
    rng = np.random.default_rng(2)
    pages = ["a", "b", "c", None]  # a missing page is a page of its own
    rows: list[object] = [list(rng.choice(pages, rng.integers(0, longest + 1))) for _ in range(400)]
    rows += [[None, "a"], ["a"], ["a", None], None, [], [None], [None, None]]
    for series in (
        pd.Series(rows, dtype=object),
        pd.Series(pd.arrays.ArrowExtensionArray(pa.array(rows, pa.list_(pa.string())))),
    ):
        codes, first = path_codes(series)
        expected, uniques = pd.factorize(pd.Series(path_keys(series), dtype=object))
        assert codes.tolist() == expected.tolist()
        assert [path_keys(series.iloc[[i]])[0] for i in first] == list(uniques)
        assert len({*codes[-7:].tolist()}) == 7


@pytest.mark.parametrize("names", [["a>b", "c|d", "a", "b"], ["a", "b", "a", "c"]])
def test_path_codes_of_dictionary_pages_count_the_names(names: list[str]) -> None:
    """session_stats' paths are codes into page names; a name listed twice is one page."""
    rng = np.random.default_rng(5)
    rows: list[list[int] | None] = [
        rng.integers(0, len(names), rng.integers(0, 4)).tolist() for _ in range(300)
    ]
    rows += [None, [], [0], [2], [0, 1], [2, 1]]
    offsets = np.cumsum([0, *(len(r or []) for r in rows)]).astype(np.int32)
    pages = pa.DictionaryArray.from_arrays(
        pa.array(np.concatenate([r for r in rows if r] or [[]]).astype(np.int32)),
        pa.array(names),
    )
    valid = pa.array([r is not None for r in rows])
    lists = pa.ListArray.from_arrays(pa.array(offsets), pages, mask=pc.invert(valid))
    codes, first = path_codes(pd.Series(pd.arrays.ArrowExtensionArray(lists)))
    python = [None if r is None else [names[i] for i in r] for r in rows]
    expected, expected_first = path_codes(pd.Series(python, dtype=object))
    assert codes.tolist() == expected.tolist()
    assert first.tolist() == expected_first.tolist()
    assert (codes[-4] == codes[-3]) == (names[0] == names[2])


def test_median_dwell_is_each_sessions_median_gap() -> None:
    rng = np.random.default_rng(3)
    lengths = rng.integers(0, 9, 500)  # empty and one-event sessions have no gap
    tokens = [rng.integers(2, 5, n) for n in lengths]
    dwell = [rng.exponential(2.0, n).astype(np.float32) for n in lengths]
    stats = session_stats(tokens, dwell, ["home", "item", "checkout"]).to_pandas()
    expected = [np.median(d[1:]) if len(d) > 1 else np.nan for d in dwell]
    np.testing.assert_allclose(stats["median_dwell"], expected, rtol=1e-6)
    assert stats["median_dwell"].dtype == np.float32


def test_pace_is_each_sessions_mean_spread_and_total_as_pandas_groups_them() -> None:
    rng = np.random.default_rng(4)
    lengths = rng.integers(0, 9, 500)  # empty sessions have no total, one-event ones no gap
    dwell = [rng.exponential(2.0, n).astype(np.float32) for n in lengths]
    dwell[0][:] = 0.0  # a session of no pace: no spread to measure
    table = session_stats([np.full(n, 2) for n in lengths], dwell, ["home"])
    assert table["median_dwell"].null_count == (lengths < 2).sum()  # missing, not NaN
    stats = table.to_pandas()
    steps = pd.DataFrame(
        {"session": np.repeat(np.arange(len(lengths)), lengths), "dwell": np.concatenate(dwell)}
    )
    gaps = steps[steps.groupby("session").cumcount() > 0].groupby("session")["dwell"]
    every = pd.RangeIndex(len(lengths))
    mean, std = gaps.mean().reindex(every), gaps.std(ddof=0).reindex(every)
    expected_cv = (std / mean.where(mean > 0)).to_numpy(np.float64)
    np.testing.assert_allclose(stats["dwell_cv"], expected_cv, rtol=1e-5)
    assert np.isnan(stats["dwell_cv"][0]) and lengths[0] > 1
    total = steps.groupby("session")["dwell"].sum().reindex(every).to_numpy()
    np.testing.assert_allclose(stats["duration"], total, rtol=1e-6)
    assert np.isnan(stats["duration"][lengths == 0]).all() and stats["duration"].dtype == np.float32


@pytest.mark.parametrize("large", [False, True])
def test_path_codes_of_arrow_lists_equal_those_of_python_lists(large: bool) -> None:
    """Evaluate keeps the paths in Arrow: same codes, same first rows, as Python lists."""
    odd = ["a>b", "c|d", 'say "hi", <b>', "a", "b"]
    rng = np.random.default_rng(1)
    rows: list[list[str] | None] = [list(rng.choice(odd, rng.integers(0, 4))) for _ in range(300)]
    rows += [None, [], ["a", "b"], None, ["a>b"], []]
    kind = (pa.large_list if large else pa.list_)(pa.string())
    arrow = pd.Series(pd.arrays.ArrowExtensionArray(pa.array(rows, kind)))
    # a slice too: the lists' offsets then start past zero
    for series, python in ((arrow, rows), (arrow.iloc[7:], rows[7:])):
        codes, first = path_codes(series)
        expected, expected_first = path_codes(pd.Series(python, dtype=object))
        assert codes.tolist() == expected.tolist()
        assert first.tolist() == expected_first.tolist()
        assert path_keys(series.iloc[first]) == path_keys(pd.Series(python).iloc[first])
    assert path_keys(arrow.iloc[[300]]) == [None]
