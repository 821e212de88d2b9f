"""hdbscan's estimator interface on PHDBSCAN, against hdbscan on the same data.

The reference is hdbscan's Prim's (``prims_kdtree``), whose tree PHDBSCAN reproduces ties
included (``test_ties.py``); hdbscan's default below 60 dimensions, Borůvka, places tied
points on its own side of a split. Soft clustering is compared column by column after mapping
our cluster ids onto hdbscan's (sibling clusters may be numbered in another order), every
membership value within 1e-9 (the rounding of exemplar distances).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from sklearn.datasets import make_blobs, make_moons
from sklearn.metrics import adjusted_rand_score

from ops.phdbscan import (
    PHDBSCAN,
    all_points_membership_vectors,
    approximate_predict,
    membership_vector,
)
from tests.ops.phdbscan.references import label_map

matplotlib.use("Agg")
hdbscan = pytest.importorskip("hdbscan")
from hdbscan import prediction as hdb_prediction  # noqa: E402

TOLERANCE = 1e-9


def _blobs() -> np.ndarray:
    X, _ = make_blobs(1500, 8, centers=6, cluster_std=[0.5, 1, 1.5, 2, 1, 0.7], random_state=0)
    return X


def _moons() -> np.ndarray:
    X, _ = make_moons(900, noise=0.07, random_state=0)
    return np.vstack([X, np.random.default_rng(0).uniform(-1.5, 2.5, (150, 2))])


DATA = {"blobs": _blobs(), "moons_noise": _moons()}
PARAMS = {"min_cluster_size": 15, "min_samples": 5}


def _pair(X: np.ndarray, **extra: object) -> tuple[object, PHDBSCAN, np.ndarray]:
    """hdbscan and PHDBSCAN fitted alike, and the column order mapping ours onto hdbscan's."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = hdbscan.HDBSCAN(
            algorithm="prims_kdtree",
            approx_min_span_tree=False,
            prediction_data=True,
            gen_min_span_tree=True,
            **extra,
        ).fit(X)
    ours = PHDBSCAN(mode="exact", prediction_data=True, **extra).fit(X)
    assert adjusted_rand_score(ref.labels_, ours.labels_) == 1.0
    mapping = label_map(ours.labels_, ref.labels_)
    columns = np.argsort([mapping[j] for j in range(int(ours.labels_.max()) + 1)])
    return ref, ours, columns


def _assert_close(got: np.ndarray, expected: np.ndarray) -> None:
    np.testing.assert_array_equal(got.argmax(1), expected.argmax(1))
    np.testing.assert_allclose(got, expected, rtol=0, atol=TOLERANCE)


@pytest.mark.parametrize("name", list(DATA))
def test_all_points_membership_vectors_match_hdbscan(name: str) -> None:
    X = DATA[name]
    train = X[: int(0.8 * len(X))]
    ref, ours, columns = _pair(train, **PARAMS)
    expected = hdb_prediction.all_points_membership_vectors(ref)
    got = all_points_membership_vectors(ours)[:, columns]
    assert got.shape == expected.shape
    _assert_close(got, expected)


def test_membership_vectors_of_some_rows_are_those_rows_of_all() -> None:
    _, ours, _ = _pair(DATA["moons_noise"][:800], **PARAMS)
    every = all_points_membership_vectors(ours)
    rows = np.arange(len(every))[::-7]  # some rows, in an order of their own
    np.testing.assert_allclose(all_points_membership_vectors(ours, rows), every[rows], atol=1e-15)
    assert all_points_membership_vectors(ours, []).shape == (0, every.shape[1])


def test_membership_vectors_by_blocks_of_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks of a few rows (explain's candidates at scale) give the vectors of one block."""
    from ops.phdbscan import _soft

    _, ours, _ = _pair(DATA["moons_noise"][:800], **PARAMS)
    every = all_points_membership_vectors(ours)
    monkeypatch.setattr(_soft, "_VECTOR_FLOATS", 7 * every.shape[1])  # blocks of 7 rows
    monkeypatch.setattr(_soft, "_BLOCK_FLOATS", 3 * len(np.vstack(ours.prediction_data_.exemplars)))
    np.testing.assert_allclose(all_points_membership_vectors(ours), every, atol=1e-15)


@pytest.mark.parametrize("name", list(DATA))
def test_membership_vector_of_new_points_matches_hdbscan(name: str) -> None:
    X = DATA[name]
    cut = int(0.8 * len(X))
    ref, ours, columns = _pair(X[:cut], **PARAMS)
    expected = hdb_prediction.membership_vector(ref, X[cut:])
    got = membership_vector(ours, X[cut:])[:, columns]
    _assert_close(got, expected)
    labels, _ = approximate_predict(ours, X[cut:])
    ref_labels, _ = hdb_prediction.approximate_predict(ref, X[cut:])
    mapping = label_map(ours.labels_, ref.labels_)
    np.testing.assert_array_equal([mapping[int(v)] for v in labels], ref_labels)


def test_exemplars_and_relative_validity_match_hdbscan() -> None:
    ref, ours, columns = _pair(DATA["blobs"], **PARAMS)
    ours_ex = [ours.exemplars_[j] for j in columns]
    for a, b in zip(ours_ex, ref.exemplars_, strict=True):
        assert sorted(map(tuple, a)) == sorted(map(tuple, b))
    assert ours.relative_validity_ == pytest.approx(ref.relative_validity_, abs=1e-12)


def test_hdbscans_own_prediction_functions_accept_a_phdbscan() -> None:
    X = DATA["moons_noise"]
    _, ours, _ = _pair(X[:800], **PARAMS)
    np.testing.assert_allclose(
        hdb_prediction.all_points_membership_vectors(ours),
        all_points_membership_vectors(ours),
        atol=TOLERANCE,
    )
    np.testing.assert_allclose(
        hdb_prediction.membership_vector(ours, X[800:]),
        membership_vector(ours, X[800:]),
        atol=TOLERANCE,
    )


def test_tree_objects_render_and_export(tmp_path: Path) -> None:
    import matplotlib.pyplot as plt

    X = DATA["moons_noise"][:400]
    model = PHDBSCAN(min_cluster_size=15, mode="exact").fit(X)
    for tree in (model.condensed_tree_, model.single_linkage_tree_, model.minimum_spanning_tree_):
        fig, ax = plt.subplots()
        tree.plot(axis=ax)
        fig.savefig(tmp_path / "tree.png")
        plt.close(fig)
        assert len(tree.to_pandas()) > 0
        assert tree.to_networkx().number_of_nodes() > 0
    model.condensed_tree_.plot(select_clusters=True, label_clusters=True)
    plt.close("all")
    assert model.minimum_spanning_tree_.to_numpy().shape == (len(X) - 1, 3)
    assert model.single_linkage_tree_.to_numpy().shape == (len(X) - 1, 4)


def test_no_cluster_gives_zero_vectors_like_hdbscan() -> None:
    X = np.random.default_rng(0).normal(size=(40, 3))
    model = PHDBSCAN(min_cluster_size=30, mode="exact").fit(X)
    assert (model.labels_ < 0).all()
    np.testing.assert_array_equal(all_points_membership_vectors(model), np.zeros(len(X)))


def test_cosine_matches_hdbscan_generic() -> None:
    X = np.abs(DATA["blobs"][:600]) + 0.1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = hdbscan.HDBSCAN(
            metric="cosine", algorithm="generic", gen_min_span_tree=True, **PARAMS
        ).fit(X)
    ours = PHDBSCAN(metric="cosine", mode="exact", **PARAMS).fit(X)
    np.testing.assert_allclose(
        np.sort(ours.minimum_spanning_tree_.to_numpy()[:, 2]),
        np.sort(ref.minimum_spanning_tree_.to_numpy()[:, 2]),
        rtol=1e-7,
        atol=1e-12,
    )
    assert adjusted_rand_score(ref.labels_, ours.labels_) >= 0.99
    # scale does not matter to cosine
    np.testing.assert_array_equal(
        PHDBSCAN(metric="cosine", mode="exact", **PARAMS).fit(X * 3.0).labels_, ours.labels_
    )


@pytest.mark.parametrize("extra", [{"alpha": 0.5}, {"alpha": 1.3}, {"max_cluster_size": 200}])
def test_alpha_and_max_cluster_size_match_hdbscan(extra: dict) -> None:
    X = DATA["blobs"][:800]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # generic: hdbscan's Borůvka scales alpha differently in its spanning tree's weights
        ref = hdbscan.HDBSCAN(algorithm="generic", gen_min_span_tree=True, **PARAMS, **extra)
        ref.fit(X)
    ours = PHDBSCAN(mode="exact", **PARAMS, **extra).fit(X)
    np.testing.assert_allclose(
        np.sort(ours.minimum_spanning_tree_.to_numpy()[:, 2]),
        np.sort(ref.minimum_spanning_tree_.to_numpy()[:, 2]),
        rtol=1e-9,
    )
    assert adjusted_rand_score(ref.labels_, ours.labels_) == 1.0


def test_saved_model_keeps_soft_clustering(tmp_path: Path) -> None:
    X = DATA["blobs"]
    model = PHDBSCAN(**PARAMS, mode="exact").fit(X[:1000])
    model.save(tmp_path / "m.npz")
    loaded = PHDBSCAN.load(tmp_path / "m.npz")
    np.testing.assert_array_equal(
        membership_vector(loaded, X[1000:]), membership_vector(model, X[1000:])
    )
    assert loaded.relative_validity_ == model.relative_validity_
