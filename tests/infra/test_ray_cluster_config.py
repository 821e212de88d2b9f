from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import ray.autoscaler
import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_ray_cluster_yaml_is_valid_for_the_cluster_launcher() -> None:
    schema_path = Path(ray.autoscaler.__file__).with_name("ray-schema.json")
    config = yaml.safe_load((ROOT / "ray_cluster.yaml").read_text())
    jsonschema.validate(config, json.loads(schema_path.read_text()))
    assert config["provider"]["type"] == "local"
