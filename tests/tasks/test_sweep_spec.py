"""The sweep's YAML search space: parsed into Ray Tune's domains, bad entries named."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ray import tune

from flows.params import PipelineParams
from tasks.sweep import SweepSpec, with_overrides

ROOT = Path(__file__).resolve().parents[2]
DEFAULTS = PipelineParams().model_dump(mode="json")


def test_the_shipped_space_parses_into_tune_domains() -> None:
    spec = SweepSpec.from_yaml(ROOT / "configs" / "sweep.yaml", DEFAULTS)
    assert spec.num_samples >= 8 and spec.max_concurrent == 2
    space = spec.param_space()
    assert isinstance(space["pretrain.temperature"], tune.search.sample.Float)
    assert isinstance(space["cluster.min_samples"], tune.search.sample.Integer)
    assert space["pretrain.objective"].categories == ["reconstruction", "contrastive"]
    sample = {path: domain.sample() for path, domain in space.items()}
    PipelineParams.model_validate(with_overrides(DEFAULTS, sample))  # every draw is a config


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"cluster.min_size": {"choice": [1]}}, "'cluster.min_size' is not a pipeline parameter"),
        ({"cluster.min_samples": {"normal": [0, 1]}}, "needs one of"),
        ({"cluster.min_samples": {"choice": [5], "randint": [1, 2]}}, "needs one of"),
    ],
)
def test_a_bad_entry_is_named_with_its_file(tmp_path: Path, entry: dict, message: str) -> None:
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump({"space": entry}))
    with pytest.raises(ValueError, match=message) as err:
        SweepSpec.from_yaml(path, DEFAULTS)
    assert str(path) in str(err.value)


def test_overrides_replace_only_their_paths() -> None:
    out = with_overrides(DEFAULTS, {"pretrain.encoder.embedding_dim": 4, "cluster.seed": 3})
    assert out["pretrain"]["encoder"]["embedding_dim"] == 4 and out["cluster"]["seed"] == 3
    assert (
        out["pretrain"]["encoder"]["hidden_size"] == DEFAULTS["pretrain"]["encoder"]["hidden_size"]
    )
    assert DEFAULTS["cluster"]["seed"] == 0, "the base configuration was modified"
