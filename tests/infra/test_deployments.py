"""prefect.yaml as Shoal reads it: placeholders, schedules, parameter checks, module entrypoints."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.deployments import DeploymentConfigError, load_specs, runner_deployments


def test_repository_prefect_yaml_declares_the_three_deployments(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SHOAL_EVENTS", "s3://lake/events/")
    monkeypatch.delenv("SHOAL_TRANSACTIONS", raising=False)
    specs = {s.name: s for s in load_specs()}
    assert set(specs) == {"retrain", "fraud_clustering", "score"}
    assert specs["retrain"].crons == [("0 3 * * *", "UTC")]
    assert specs["score"].crons and not specs["fraud_clustering"].crons
    assert specs["retrain"].parameters["events"] == "s3://lake/events/"
    assert "transactions" not in specs["retrain"].parameters, "unset: given at trigger time"

    (retrain,) = runner_deployments([specs["retrain"]])
    assert retrain.entrypoint == "flows.retrain.retrain"
    assert retrain.enforce_parameter_schema
    assert [s.schedule.cron for s in retrain.schedules] == ["0 3 * * *"]
    properties = retrain._parameter_openapi_schema.properties
    assert {"window_hours", "params", "champion"} <= set(properties)


def write(tmp_path: Path, deployment: str) -> Path:
    path = tmp_path / "prefect.yaml"
    path.write_text(f"name: t\ndeployments:\n{deployment}")
    return path


def test_bad_default_parameters_are_refused_before_registering(tmp_path: Path) -> None:
    bad = write(
        tmp_path,
        "  - name: retrain\n    entrypoint: flows/retrain.py:retrain\n"
        "    parameters: {window_hours: -1}\n",
    )
    with pytest.raises(DeploymentConfigError, match=r"'retrain'.*window_hours"):
        runner_deployments(load_specs(bad))
    unknown = write(
        tmp_path,
        "  - name: retrain\n    entrypoint: flows/retrain.py:retrain\n"
        "    parameters: {windw_hours: 3}\n",
    )
    with pytest.raises(DeploymentConfigError, match=r"unknown parameters.*windw_hours"):
        runner_deployments(load_specs(unknown))
    nested = write(
        tmp_path,
        "  - name: retrain\n    entrypoint: flows/retrain.py:retrain\n"
        "    parameters: {champion: {gates: {max_noise_share: 2}}}\n",
    )
    with pytest.raises(DeploymentConfigError, match="max_noise_share"):
        runner_deployments(load_specs(nested))


def test_missing_flow_or_deployment_name_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, "  - name: x\n    entrypoint: flows/nothing.py:nothing\n")
    with pytest.raises(DeploymentConfigError, match=r"'x': cannot load flows/nothing.py"):
        runner_deployments(load_specs(path))
    with pytest.raises(DeploymentConfigError, match=r"no deployment named \['y'\]"):
        load_specs(path, ["y"])
