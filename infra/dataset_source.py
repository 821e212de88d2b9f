"""Where a logged dataset came from, in a form MLflow's own ``mlflow.data.get_source`` reads.

MLflow resolves local paths, ``file://``, ``s3://``, ``gs://``, ``hdfs://`` and ``http(s)://``
to its own sources; the other URIs Shoal reads through fsspec (``abfs://``, ``az://``,
``memory://``…) get :class:`FsspecDatasetSource`, registered with MLflow's source registry so
that the same call reads it back.
"""

from __future__ import annotations

import warnings
from typing import Any

from mlflow.data.dataset_source import DatasetSource
from mlflow.data.dataset_source_registry import register_dataset_source, resolve_dataset_source
from mlflow.exceptions import MlflowException


class FsspecDatasetSource(DatasetSource):
    """A dataset at any URI fsspec opens, for the schemes MLflow has no source of its own."""

    def __init__(self, uri: str) -> None:
        self.uri = uri

    @staticmethod
    def _get_source_type() -> str:
        return "fsspec"

    def load(self, dst_path: str | None = None) -> str:
        """Download the dataset into ``dst_path`` (a new temporary directory by default)."""
        import tempfile

        import fsspec

        destination = dst_path or tempfile.mkdtemp()
        fsspec.open(self.uri).fs.get(self.uri, destination, recursive=True)
        return destination

    @staticmethod
    def _can_resolve(raw_source: Any) -> bool:
        # Never chosen by MLflow's resolution, which must prefer its own sources: only
        # :func:`dataset_source` builds one, for what they cannot resolve.
        return False

    @classmethod
    def _resolve(cls, raw_source: Any) -> FsspecDatasetSource:
        return cls(str(raw_source))

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-able form MLflow stores."""
        return {"uri": self.uri}

    @classmethod
    def from_dict(cls, source_dict: dict[Any, Any]) -> FsspecDatasetSource:
        """Rebuild from :meth:`to_dict`'s form."""
        return cls(source_dict["uri"])


register_dataset_source(FsspecDatasetSource)


def dataset_source(uri: str) -> DatasetSource:
    """Return MLflow's source for ``uri``, or :class:`FsspecDatasetSource` where it has none."""
    try:
        with warnings.catch_warnings():
            # MLflow registers its local source twice and warns of the ambiguity with itself.
            warnings.simplefilter("ignore", UserWarning)
            return resolve_dataset_source(uri)
    except MlflowException:
        return FsspecDatasetSource(uri)
