"""One validated configuration per run, shared by the CLI, Prefect deployments and sweeps."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field

from tasks.cluster import ClusterParams
from tasks.embed import EmbedParams
from tasks.explain import ExplainParams
from tasks.features import FeatureParams
from tasks.ingest import IngestParams
from tasks.pretrain import PretrainParams
from tasks.risk import RiskParams


class PipelineParams(BaseModel):
    """Every stage's parameters; defaults live on each stage's model, nowhere else."""

    model_config = ConfigDict(extra="forbid")

    ingest: IngestParams = Field(default_factory=IngestParams)
    pretrain: PretrainParams = Field(default_factory=PretrainParams)
    embed: EmbedParams = Field(default_factory=EmbedParams)
    features: FeatureParams = Field(default_factory=FeatureParams)
    cluster: ClusterParams = Field(default_factory=ClusterParams)
    risk: RiskParams = Field(default_factory=RiskParams)
    explain: ExplainParams = Field(default_factory=ExplainParams)

    @classmethod
    def from_yaml(cls, path: str | Path) -> PipelineParams:
        """Read and validate a ``--config`` YAML; an empty file means every default."""
        data = yaml.safe_load(Path(path).read_text()) or {}
        return cls.model_validate(data)
