"""Prefect deployments, declared once in ``prefect.yaml`` and used three ways.

``prefect deploy --all`` reads the file itself; ``shoal deploy`` registers the same deployments
on a process work pool with the configured Prefect API; ``shoal serve`` serves them from this
process, schedules included, with no work pool at all. ``{{ $VAR }}`` placeholders are filled
from the environment as ``prefect deploy`` fills them; an unset one leaves that parameter
without a default, to be given when a run is triggered.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
PREFECT_YAML = REPO_ROOT / "prefect.yaml"


class DeploymentConfigError(ValueError):
    """``prefect.yaml`` names a missing flow or gives it parameters it does not accept."""


@dataclass(frozen=True)
class DeploymentSpec:
    """One deployment of ``prefect.yaml``: its name, flow entrypoint and schedule."""

    name: str
    entrypoint: str  # "flows/retrain.py:retrain", as prefect.yaml writes it
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)
    crons: list[tuple[str, str]] = field(default_factory=list)  # (cron, timezone)
    tags: list[str] = field(default_factory=list)

    @property
    def module_and_flow(self) -> tuple[str, str]:
        """The flow's module and function name, from ``path/to/file.py:function``."""
        path, _, function = self.entrypoint.partition(":")
        return path.removesuffix(".py").replace("/", "."), function


def load_specs(path: Path = PREFECT_YAML, names: list[str] | None = None) -> list[DeploymentSpec]:
    """The deployments of ``path`` (all, or those ``names``), placeholders filled."""
    from prefect.utilities.templating import apply_values

    raw = yaml.safe_load(path.read_text()) or {}
    config = apply_values(raw, dict(os.environ), remove_notset=True)
    specs = []
    for i, d in enumerate(config.get("deployments") or []):
        if "name" not in d or "entrypoint" not in d:
            raise DeploymentConfigError(f"{path}: deployments[{i}] needs a name and an entrypoint")
        specs.append(
            DeploymentSpec(
                name=d["name"],
                entrypoint=d["entrypoint"],
                description=d.get("description", ""),
                # An unset placeholder comes back empty: no default, given at trigger time.
                parameters={k: v for k, v in (d.get("parameters") or {}).items() if v != ""},
                crons=[(s["cron"], s.get("timezone", "UTC")) for s in d.get("schedules") or []],
                tags=d.get("tags") or [],
            )
        )
    unknown = set(names or []) - {s.name for s in specs}
    if unknown:
        raise DeploymentConfigError(f"{path}: no deployment named {sorted(unknown)}")
    return [s for s in specs if not names or s.name in names]


def load_flow(spec: DeploymentSpec) -> Any:
    """The flow object behind a deployment, imported as a module of the installed package."""
    module, function = spec.module_and_flow
    try:
        return getattr(importlib.import_module(module), function)
    except (ImportError, AttributeError) as err:
        raise DeploymentConfigError(
            f"deployment '{spec.name}': cannot load {spec.entrypoint}: {err}"
        ) from err


def check_parameters(spec: DeploymentSpec, flow: Any) -> None:
    """Reject default parameters the flow would reject, before anything is registered."""
    from prefect.utilities.callables import parameter_schema
    from prefect.utilities.schema_tools.validation import validate

    schema = parameter_schema(flow.fn).model_dump_for_openapi()
    unknown = set(spec.parameters) - set(schema["properties"])
    if unknown:
        raise DeploymentConfigError(f"deployment '{spec.name}': unknown parameters {unknown}")
    errors = validate(spec.parameters, schema, ignore_required=True)
    if errors:
        where = "; ".join(f"{'.'.join(map(str, e.path))}: {e.message}" for e in errors)
        raise DeploymentConfigError(f"deployment '{spec.name}': bad parameters: {where}")


def runner_deployments(specs: list[DeploymentSpec]) -> list[Any]:
    """Build ``RunnerDeployment`` objects whose entrypoint is a module path.

    The package is installed wherever a worker or ``shoal serve`` runs, so no code storage is
    needed.
    """
    from prefect.deployments.runner import EntrypointType
    from prefect.schedules import Cron

    deployments = []
    for spec in specs:
        flow = load_flow(spec)
        check_parameters(spec, flow)
        deployments.append(
            flow.to_deployment(
                name=spec.name,
                description=spec.description or None,
                parameters=spec.parameters,
                schedules=[Cron(cron, timezone=tz) for cron, tz in spec.crons],
                tags=spec.tags,
                entrypoint_type=EntrypointType.MODULE_PATH,
            )
        )
    return deployments


def serve(names: list[str] | None = None, limit: int | None = None) -> None:
    """Serve the deployments in this process until interrupted (schedules run from here)."""
    from prefect import serve as prefect_serve

    prefect_serve(*runner_deployments(load_specs(names=names)), limit=limit)


def deploy(work_pool: str, names: list[str] | None = None) -> list[UUID]:
    """Register the deployments on ``work_pool`` (a process pool, created when missing).

    ``prefect worker start --pool <work_pool>`` then runs them.
    """
    from prefect import deploy as prefect_deploy
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists

    deployments = runner_deployments(load_specs(names=names))
    with get_client(sync_client=True) as client, contextlib.suppress(ObjectAlreadyExists):
        client.create_work_pool(WorkPoolCreate(name=work_pool, type="process"))
    return prefect_deploy(
        *deployments,
        work_pool_name=work_pool,
        build=False,
        push=False,
        print_next_steps_message=False,
        ignore_warnings=True,
    )
