import numpy as np
import pytest

from ops.sequence import BagOfEventsEncoder
from ops.sequence._bag_of_events import DWELL_FEATURES, dwell_statistics
from tests.ops.timing_data import knn_purity, timing_only_sessions


def test_shapes_names_and_unseen_tokens() -> None:
    tokens, dwell, _ = timing_only_sessions(60, seed=0)
    enc = BagOfEventsEncoder(n_components=8).fit(tokens, dwell)
    z = enc.transform(tokens, dwell)
    assert z.shape == (60, 8 + len(DWELL_FEATURES)) and z.dtype == np.float32
    assert enc.n_features_out_ == z.shape[1] == len(enc.get_feature_names_out())
    unseen = enc.transform([np.array([999, 998], np.int32)], [np.array([0.0, 1.0], np.float32)])
    assert np.isfinite(unseen).all()
    np.testing.assert_allclose(enc.fit_transform(tokens, dwell), z, atol=1e-5)
    with pytest.raises(ValueError):
        enc.transform(tokens, dwell[:-1])


def test_dwell_statistics_skip_the_first_event() -> None:
    stats = dwell_statistics([np.array([0.0, 0.5, 0.5, 3.0]), np.array([0.0])])
    assert stats[0, 2] == pytest.approx(np.log1p(0.5))
    assert stats[0, 3] == pytest.approx(2 / 3)
    assert stats[1, :4].tolist() == [0.0, 0.0, 0.0, 0.0]
    assert stats[1, 4] == pytest.approx(np.log1p(1))


@pytest.mark.parametrize("human_median", [2.0, 0.6])
def test_separates_timing_only_bots_through_dwell_statistics(human_median: float) -> None:
    tokens, dwell, y = timing_only_sessions(1000, seed=0, human_median=human_median)
    with_dwell = knn_purity(BagOfEventsEncoder(16).fit_transform(tokens, dwell), y)
    pages = BagOfEventsEncoder(16, dwell_weight=0.0).fit_transform(tokens, dwell)
    pages_only = knn_purity(pages, y)
    assert with_dwell >= 0.9
    assert pages_only < 0.6  # the pages really carry no signal
