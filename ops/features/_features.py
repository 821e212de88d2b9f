"""Intuitive features: whatever columns the risk experts supply, encoded for a distance metric.

The columns are not known in advance (each data source has its own), so the encoder infers a
kind per column and records it in a JSON-able spec that scoring reapplies unchanged:
numbers are log-compressed when heavy-tailed and robust-scaled; booleans become 0/1;
low-cardinality text is one-hot; high-cardinality text (device, IP, email) becomes its *reuse
count*, the coordination signal risk experts look for, since the raw id carries no geometry.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal, cast

import numpy as np
import pandas as pd

Kind = Literal["numeric", "boolean", "onehot", "frequency"]
CLIP = 5.0


@dataclass
class ColumnSpec:
    name: str
    kind: Kind
    log: bool = False
    center: float = 0.0
    scale: float = 1.0
    fill: float = 0.0
    categories: list[str] = field(default_factory=list)

    def output_names(self) -> list[str]:
        if self.kind == "onehot":
            return [f"{self.name}={c}" for c in self.categories] + [f"{self.name}=other"]
        return [f"{self.name}_reuse" if self.kind == "frequency" else self.name]


@dataclass
class FeatureSpec:
    columns: list[ColumnSpec]

    @property
    def output_names(self) -> list[str]:
        return [name for c in self.columns for name in c.output_names()]

    def to_dict(self) -> dict[str, Any]:
        return {"columns": [asdict(c) for c in self.columns]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureSpec:
        return cls([ColumnSpec(**c) for c in data["columns"]])


_BOOLEAN_TEXTS = frozenset({"true", "false", "0", "1", "yes", "no"})
# distinct texts lowered per step of `_lowered_texts`
_LOWERED_STEP = 1024


Texts = tuple[np.ndarray, pd.Index]
"""A text column factorised: each row's code into the distinct texts (``-1``: missing), and
those texts (:func:`_text_codes`)."""


def _infer_kind(values: pd.Series, max_categories: int, text: Texts | None) -> Kind:
    if text is None:
        return "boolean" if pd.api.types.is_bool_dtype(values) else "numeric"
    lowered = _lowered_texts(text[1], max(max_categories, len(_BOOLEAN_TEXTS)))
    if lowered is None:
        return "frequency"
    if 0 < len(lowered) <= len(_BOOLEAN_TEXTS) and lowered <= _BOOLEAN_TEXTS:
        return "boolean"
    return "onehot" if len(lowered) <= max_categories else "frequency"


def _lowered_texts(texts: pd.Index, limit: int) -> set[str] | None:
    """The distinct texts lowered, or None as soon as there are more than ``limit``.

    Lowering can merge texts ("US", "us"), so the distinct lowered texts are counted, not
    the texts; but an id column has as many as it has texts (1.4M devices of 3M rows), and
    lowering all of them took 0.5 s at 3M rows to learn that it has more than a dozen.
    """
    lowered: set[str] = set()
    for start in range(0, len(texts), _LOWERED_STEP):
        lowered.update(texts[start : start + _LOWERED_STEP].str.lower())
        if len(lowered) > limit:
            return None
    return lowered


def _text_codes(values: pd.Series) -> Texts:
    """Each row's code into the distinct texts (``-1`` for missing) and those texts.

    String work then runs once per distinct value, not per row (1M rows, a dozen values).
    """
    codes, uniques = pd.factorize(values.astype("string"))
    return codes, pd.Index(uniques)


def _is_text(values: pd.Series) -> bool:
    return not (pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values))


def _factorised(values: pd.Series, text: Texts | None) -> Texts:
    """``text`` where the caller has the column factorised already, else :func:`_text_codes`."""
    return text if text is not None else _text_codes(values)


def _rows_per_text(text: Texts) -> np.ndarray:
    codes, texts = text
    return np.bincount(codes[codes >= 0], minlength=len(texts))


def _top_texts(text: Texts, top: int) -> list[str]:
    """The ``top`` most frequent texts, sorted; of equally frequent ones, those met first."""
    order = np.argsort(-_rows_per_text(text), kind="stable")[:top]
    return sorted(str(text[1][i]) for i in order)


def _per_row(codes: np.ndarray, per_value: np.ndarray, missing: float) -> np.ndarray:
    """``per_value[code]`` for each row, ``missing`` where the code is ``-1``."""
    return np.append(per_value.astype(float), missing)[codes]


def _as_bool(values: pd.Series, text: Texts | None) -> np.ndarray:
    if pd.api.types.is_bool_dtype(values):
        return values.to_numpy(dtype=float, na_value=0.0)
    codes, uniques = _factorised(values, text)
    truthy = uniques.str.lower().isin(["true", "1", "yes", "1.0"])
    return _per_row(codes, np.asarray(truthy), 0.0)


def _reuse(values: pd.Series, text: Texts | None) -> np.ndarray:
    text = _factorised(values, text)
    return np.log1p(_per_row(text[0], _rows_per_text(text), 0.0))


def _robust(x: np.ndarray) -> tuple[float, float]:
    finite = x[np.isfinite(x)]
    if finite.size == 0:
        return 0.0, 1.0
    # `finite` is a copy of its own, which the percentiles may reorder (the fallback's
    # standard deviation does not depend on the order)
    q25, q50, q75 = np.percentile(finite, [25, 50, 75], overwrite_input=True)
    scale = (q75 - q25) / 1.349 or float(np.std(finite)) or 1.0
    return float(q50), float(scale)


def _raw(spec: ColumnSpec, values: pd.Series, text: Texts | None = None) -> np.ndarray:
    """A boolean, frequency or numeric column's values before scaling, in a new array.

    ``text``: the column factorised, where the caller has it already.
    """
    if spec.kind == "boolean":
        return _as_bool(values, text)
    if spec.kind == "frequency":
        return _reuse(values, text)
    x = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float, na_value=np.nan, copy=True)
    if spec.log:  # sign(x) log1p(|x|), in place: each temporary was fresh pages at 3M rows
        sign = np.sign(x)
        np.log1p(np.abs(x, out=x), out=x)
        x *= sign
    return x


def fit_features(
    frame: pd.DataFrame, exclude: frozenset[str] | set[str], max_categories: int = 12
) -> FeatureSpec:
    """Infer how to encode each non-excluded column of ``frame``."""
    return _fit(frame, exclude, max_categories, {})


def fit_transform_features(
    frame: pd.DataFrame, exclude: frozenset[str] | set[str], max_categories: int = 12
) -> tuple[FeatureSpec, EncodedFeatures]:
    """:func:`fit_features`, then :func:`transform_features` of the same ``frame``.

    Each text column is factorised once for both (0.55 s for 3M device ids).
    """
    texts: dict[str, Texts] = {}
    spec = _fit(frame, exclude, max_categories, texts)
    return spec, _transform(spec, frame, texts)


def _fit(
    frame: pd.DataFrame,
    exclude: frozenset[str] | set[str],
    max_categories: int,
    texts: dict[str, Texts],
) -> FeatureSpec:
    """:func:`fit_features`, keeping each text column factorised in ``texts``."""
    specs: list[ColumnSpec] = []
    for name in frame.columns:
        if name in exclude or name.startswith("_"):
            continue
        values = frame[name]
        if values.isna().all():
            continue
        text = texts[name] = _text_codes(values) if _is_text(values) else None
        spec = ColumnSpec(name, _infer_kind(values, max_categories, text))
        if spec.kind == "onehot":
            spec.categories = _top_texts(cast(Texts, text), max_categories)
        else:
            if spec.kind == "numeric":
                x = pd.to_numeric(values, errors="coerce").dropna().to_numpy(dtype=float)
                spec.log = bool(x.size and x.min() >= 0 and pd.Series(x).skew() > 2)
            raw = _raw(spec, values, text)
            spec.center, spec.scale = _robust(raw)
            spec.fill = spec.center
        specs.append(spec)
    return FeatureSpec(specs)


def transform_features(spec: FeatureSpec, frame: pd.DataFrame) -> EncodedFeatures:
    """Encode ``frame`` with a fitted spec: ``len(frame)`` rows of ``len(spec.output_names)``.

    ``np.asarray`` of the result is the ``float32`` matrix; slices of rows are its rows.
    """
    return _transform(spec, frame, {})


def _transform(spec: FeatureSpec, frame: pd.DataFrame, texts: dict[str, Texts]) -> EncodedFeatures:
    """:func:`transform_features`, with the text columns already factorised in ``texts``."""
    columns: list[np.ndarray] = []
    for col in spec.columns:
        if col.name not in frame:
            raise KeyError(f"feature column '{col.name}' is missing from the data to encode")
        values = frame[col.name]
        text = texts.get(col.name)
        if col.kind == "onehot":
            codes, uniques = _factorised(values, text)
            # a row's column: its category's, else "other" (the last), missing rows included
            known = pd.Index(col.categories).get_indexer(uniques)
            k = len(col.categories)
            lookup = np.append(np.where(known >= 0, known, k), k).astype(np.min_scalar_type(k))
            columns.append(lookup[codes])
        else:
            raw = _raw(col, values, text)  # an array of its own, scaled in place
            raw[~np.isfinite(raw)] = col.fill
            raw -= col.center
            raw /= col.scale
            columns.append(np.clip(raw, -CLIP, CLIP, out=raw).astype(np.float32))
    return EncodedFeatures(columns, [len(c.output_names()) for c in spec.columns], len(frame))


class EncodedFeatures:
    """Encoded rows, held a column at a time: numbers as ``float32``, one-hot columns as codes.

    A one-hot column of ``k`` categories takes one byte a row here, where the ``float32``
    matrix takes ``k + 1`` floats: at 3M rows the matrix was 384 MB of fresh memory, whose
    pages cost more than the encoding (benchmarks/README.md). Its rows are made on demand,
    a slice at a time, which is how the hybrid vectors read them (:func:`apply_hybrid`).

    Parameters
    ----------
    columns : list of ndarray (n,)
        Per input column: its encoded ``float32`` values, or, for a one-hot column, each
        row's output column among its own (an unsigned integer; the last is "other").
    widths : list of int
        Per input column, its output columns: 1, or a one-hot column's categories plus one.
    n_rows : int
    """

    def __init__(self, columns: list[np.ndarray], widths: list[int], n_rows: int) -> None:
        self._columns, self._widths, self._n_rows = columns, widths, n_rows

    @property
    def shape(self) -> tuple[int, int]:
        """``(rows, output columns)``."""
        return len(self), sum(self._widths)

    def __len__(self) -> int:
        return self._n_rows

    def __getitem__(self, rows: slice | np.ndarray) -> np.ndarray:
        """The ``float32`` rows ``rows`` (a slice or an index array of rows)."""
        n_rows = len(range(len(self))[rows]) if isinstance(rows, slice) else len(rows)
        # column-major, as the matrix was: each output column is written contiguously
        out = np.zeros((self.shape[1], n_rows), np.float32)
        flat = out.reshape(-1)
        at = 0
        for column, width in zip(self._columns, self._widths, strict=True):
            values = column[rows]
            if np.issubdtype(values.dtype, np.integer):
                # each row's 1 in its own output column of the k + 1
                flat[(at + values.astype(np.int64)) * n_rows + np.arange(n_rows)] = 1.0
            else:
                out[at] = values
            at += width
        return out.T

    def __array__(self, dtype: np.dtype | None = None, copy: bool | None = None) -> np.ndarray:
        if copy is False:
            raise ValueError("encoded features hold no matrix to share: rows are made anew")
        rows = self[:]
        return rows if dtype is None else rows.astype(dtype, copy=False)
