from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ops.features import (
    FeatureSpec,
    fit_features,
    fit_transform_features,
    hybrid_vectors,
    transform_features,
)


@pytest.fixture
def transactions() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 400
    return pd.DataFrame(
        {
            "txn_id": [f"t{i}" for i in range(n)],
            "amount": rng.lognormal(3, 1.5, n),
            "account_age_days": rng.uniform(0, 900, n),
            "is_new_address": rng.random(n) < 0.2,
            "flag_text": rng.choice(["true", "false"], n),
            "country": rng.choice(["US", "FR", "DE"], n),
            "device_id": np.r_[["shared"] * 40, [f"d{i}" for i in range(n - 40)]],
            "label": rng.integers(0, 2, n),
        }
    )


def test_kinds_are_inferred_and_identifiers_excluded(transactions: pd.DataFrame) -> None:
    spec = fit_features(transactions, exclude={"txn_id", "label"}, max_categories=5)
    kinds = {c.name: c.kind for c in spec.columns}
    assert kinds == {
        "amount": "numeric",
        "account_age_days": "numeric",
        "is_new_address": "boolean",
        "flag_text": "boolean",
        "country": "onehot",
        "device_id": "frequency",
    }
    assert next(c for c in spec.columns if c.name == "amount").log, "heavy tail is log-compressed"


def test_kind_counts_texts_as_lowered_past_many_spellings() -> None:
    """Thousands of spellings of a few words are those words: one-hot, not reuse counts."""
    from itertools import product

    # 2,048 spellings: more than one step of `_lowered_texts`
    spellings = ["".join(p) for p in product(*zip("fingerprint", "FINGERPRINT", strict=True))]
    words = spellings + ["other", "Third"] * 1000
    frame = pd.DataFrame({"word": words, "id": [f"id{i}" for i in range(len(words))]})
    spec = fit_features(frame, exclude=set(), max_categories=5)
    assert len(set(spellings)) == 2048
    assert {c.name: c.kind for c in spec.columns} == {"word": "onehot", "id": "frequency"}


def test_reuse_count_separates_shared_devices(transactions: pd.DataFrame) -> None:
    spec = fit_features(transactions, exclude={"txn_id", "label"})
    X = np.asarray(transform_features(spec, transactions))
    reuse = X[:, spec.output_names.index("device_id_reuse")]
    assert reuse[:40].min() > reuse[40:].max()


def test_spec_round_trips_through_json_and_handles_unseen_values(
    transactions: pd.DataFrame,
) -> None:
    spec = fit_features(transactions, exclude={"txn_id", "label"})
    again = FeatureSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    new = transactions.head(3).assign(country=["JP", None, "US"], amount=[np.nan, 1.0, 2.0])
    X = np.asarray(transform_features(again, new))
    assert X.shape == (3, len(spec.output_names)) and np.isfinite(X).all()
    other = next(i for i, n in enumerate(spec.output_names) if n == "country=other")
    assert X[:2, other].tolist() == [1.0, 1.0]
    with pytest.raises(KeyError, match="amount"):
        transform_features(spec, new.drop(columns="amount"))


def test_hybrid_blocks_weigh_by_weight_not_by_dimension() -> None:
    rng = np.random.default_rng(1)
    wide, narrow = rng.normal(size=(2000, 64)), rng.normal(size=(2000, 4)) * 100
    h = hybrid_vectors([wide, narrow], [1.0, 2.0])
    energy_wide = (h[:, :64] ** 2).sum(axis=1).mean()
    energy_narrow = (h[:, 64:] ** 2).sum(axis=1).mean()
    assert energy_wide == pytest.approx(1.0, rel=0.05)
    assert energy_narrow == pytest.approx(4.0, rel=0.05)
    with pytest.raises(ValueError):
        hybrid_vectors([wide], [1.0, 1.0])


def test_scaling_is_numpys_mean_and_std_over_many_row_steps() -> None:
    """The moments are taken a step of rows at a time; they are NumPy's, to rounding."""
    from ops.features import fit_hybrid
    from ops.features._hybrid import _ROWS

    rng = np.random.default_rng(2)
    block = (rng.normal(size=(2 * _ROWS + 17, 3)) * [1.0, 50.0, 1e-3] + [0.0, 1e4, 7.0]).astype(
        np.float32
    )
    scaling = fit_hybrid([block], [1.0])
    exact = block.astype(np.float64)
    np.testing.assert_allclose(scaling.means[0], exact.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(scaling.stds[0], exact.std(axis=0), rtol=1e-10)


def test_encoded_rows_are_the_columns_side_by_side(transactions: pd.DataFrame) -> None:
    """Each output column encodes its input column alone."""
    big = transactions.sample(20_000, replace=True, random_state=0)
    spec = fit_features(big, exclude={"txn_id", "label"})
    X = np.asarray(transform_features(spec, big))
    assert X.shape == (len(big), len(spec.output_names)) and X.dtype == np.float32
    names = spec.output_names
    onehot = [i for i, name in enumerate(names) if name.startswith("country=")]
    assert (X[:, onehot].sum(axis=1) == 1.0).all()
    country = big["country"].to_numpy()
    for i in onehot:
        value = names[i].split("=", 1)[1]
        assert (X[:, i] == 1.0).tolist() == (country == value).tolist()
    single = FeatureSpec([c for c in spec.columns if c.name == "amount"])
    np.testing.assert_array_equal(
        X[:, names.index("amount")], np.asarray(transform_features(single, big))[:, 0]
    )


def test_encoded_rows_come_by_slice_or_index(transactions: pd.DataFrame) -> None:
    """Rows taken a slice or an index array at a time are the matrix's rows."""
    spec = fit_features(transactions, exclude={"txn_id", "label"})
    encoded = transform_features(spec, transactions)
    X = np.asarray(encoded)
    assert encoded.shape == X.shape == (len(transactions), len(spec.output_names))
    for rows in (slice(0, 7), slice(390, None), slice(5, 5), np.array([399, 0, 0, 17])):
        np.testing.assert_array_equal(encoded[rows], X[rows])
    assert np.asarray(encoded, dtype=np.float64).dtype == np.float64
    with pytest.raises(ValueError, match="no matrix to share"):
        np.array(encoded, copy=False)
    none = transform_features(FeatureSpec([]), transactions)
    assert none.shape == (len(transactions), 0) and len(none) == len(transactions)


def test_fit_transform_is_fit_then_transform(transactions: pd.DataFrame) -> None:
    spec, X = fit_transform_features(transactions, exclude={"txn_id", "label"})
    assert spec == fit_features(transactions, exclude={"txn_id", "label"})
    assert np.array_equal(X, transform_features(spec, transactions))


def test_one_hot_keeps_the_most_frequent_texts_and_of_ties_those_met_first() -> None:
    # three texts once lowered, so one-hot; four as written, so the top three are kept
    frame = pd.DataFrame({"c": ["b", "B", "a", "c", "c", "a", None, "B", "b", "b"]})
    assert fit_features(frame, set(), max_categories=3).columns[0].categories == ["B", "a", "b"]
    tied = frame.iloc[:-1]  # b, B, a and c twice each: the first three met
    assert fit_features(tied, set(), max_categories=3).columns[0].categories == ["B", "a", "b"]
    reordered = pd.DataFrame({"c": ["c", "a", "c", "B", "a", "b", "B", "b"]})
    assert fit_features(reordered, set(), 3).columns[0].categories == ["B", "a", "c"]
