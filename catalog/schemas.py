"""The input data contract (``shared/docs/product.md``): what must be present and of what kind."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pyarrow as pa


class InputError(ValueError):
    """A defect that stops the run before anything is written; the message names file and column."""


ColumnKind = Literal["string", "timestamp", "number", "label"]


@dataclass(frozen=True)
class Column:
    """One column of an input contract: its name, kind and whether it must be present."""

    name: str
    kind: ColumnKind
    required: bool = True


@dataclass(frozen=True)
class Contract:
    """Columns a source must have; anything else is kept and offered to the feature encoder."""

    source: str
    columns: tuple[Column, ...]

    @property
    def required(self) -> list[str]:
        """The names of the columns the source must have."""
        return [c.name for c in self.columns if c.required]


EVENTS = Contract(
    "events",
    (
        Column("txn_id", "string"),
        Column("ts", "timestamp"),
        Column("event", "string"),
        Column("user_id", "string", required=False),
    ),
)

TRANSACTIONS = Contract(
    "transactions",
    (
        Column("txn_id", "string"),
        Column("ts", "timestamp"),
        Column("amount", "number"),
        Column("label", "label", required=False),
        Column("decision", "string", required=False),
    ),
)

# Columns that describe a transaction but must never become model inputs: identifiers,
# time, and the evaluation-only ground truth.
NON_FEATURE_COLUMNS = frozenset({"txn_id", "ts", "user_id", "label", "decision"})


_EXPECTED = {
    "string": "text or integer identifiers",
    "timestamp": "a timestamp, ISO-8601 text or epoch milliseconds",
    "number": "a number",
    "label": "0/1 (or empty where unknown)",
}


def _castable(kind: ColumnKind, dtype: pa.DataType) -> bool:
    if pa.types.is_null(dtype):  # an optional column left empty; required ones fail earlier
        return True
    text = pa.types.is_string(dtype) or pa.types.is_large_string(dtype)
    number = pa.types.is_integer(dtype) or pa.types.is_floating(dtype) or pa.types.is_decimal(dtype)
    if kind == "string":
        return text or pa.types.is_integer(dtype) or pa.types.is_dictionary(dtype)
    if kind == "timestamp":
        return text or number or pa.types.is_timestamp(dtype) or pa.types.is_date(dtype)
    return text or number or pa.types.is_boolean(dtype) or pa.types.is_null(dtype)


def check_contract(table: pa.Table, contract: Contract, uri: str) -> None:
    """Fail on defects no row-level quarantine could fix: missing columns, impossible types."""
    present = set(table.column_names)
    for name in contract.required:
        if table.column_names.count(name) > 1:
            raise InputError(
                f"{uri}: column '{name}' of {contract.source} appears "
                f"{table.column_names.count(name)} times; expected one"
            )
    for column in contract.columns:
        if column.name not in present:
            if column.required:
                raise InputError(
                    f"{uri}: {contract.source} input is missing required column "
                    f"'{column.name}' (expected {_EXPECTED[column.kind]}); "
                    f"found columns {sorted(present - {'_source', '_row'})}"
                )
            continue
        dtype = table.schema.field(column.name).type
        if column.required and pa.types.is_null(dtype):
            raise InputError(
                f"{uri}: required column '{column.name}' of {contract.source} holds no values "
                f"at all (expected {_EXPECTED[column.kind]})"
            )
        if not _castable(column.kind, dtype):
            raise InputError(
                f"{uri}: column '{column.name}' of {contract.source} has type {dtype}, "
                f"which cannot be read as {_EXPECTED[column.kind]}"
            )
