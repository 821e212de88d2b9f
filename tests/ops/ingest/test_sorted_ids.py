from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from ops.ingest._sorted_ids import sorted_positions


def _ids(rng: np.random.Generator, n: int) -> list[str]:
    # short ids over few letters: many share prefixes, and some are prefixes of others
    alphabet = list("ab\u00e9z\u4e2d")  # multi-byte characters sort by code point as bytes
    return ["".join(rng.choice(alphabet, rng.integers(0, 5))) for _ in range(n)]


@pytest.mark.parametrize("seed", range(5))
def test_every_value_is_found_at_its_position_or_reported_absent(seed: int) -> None:
    rng = np.random.default_rng(seed)
    ids = sorted(set(_ids(rng, 200)))
    values = _ids(rng, 300)
    expected = [ids.index(v) if v in ids else -1 for v in values]
    assert sorted_positions(pa.array(values), pa.array(ids)).tolist() == expected
    assert -1 in expected and any(e >= 0 for e in expected), "both cases are exercised"


def test_large_offsets_slices_and_nulls_are_read_where_they_lie() -> None:
    ids = pa.array(["", "a", "ab", "b"], pa.large_string())
    values = pa.array(["zz", "b", None, "", "ab", "a", "abc"], pa.string()).slice(1)
    assert sorted_positions(values, ids).tolist() == [3, -1, 0, 2, 1, -1]
    assert sorted_positions(values, ids.slice(2)).tolist() == [1, -1, -1, 0, -1, -1]


def test_nothing_to_search_in_or_for() -> None:
    assert sorted_positions(pa.array(["a"]), pa.array([], pa.string())).tolist() == [-1]
    assert sorted_positions(pa.array([], pa.string()), pa.array(["a"])).tolist() == []
    empty_text = pa.array(["", ""])  # no data buffer at all
    assert sorted_positions(empty_text, pa.array([""])).tolist() == [0, 0]
