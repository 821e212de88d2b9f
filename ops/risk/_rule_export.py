"""Rules in the languages real engines run: a SQL ``WHERE`` predicate and JSON Logic.

`ops.risk.Rule.mask` is the reference evaluation; both exports match it row for row,
missing values included: **a missing value matches no condition**, whatever the operator
(``!=`` too), as in `Condition.mask`.

* SQL reads the transactions joined with the session-statistics table a run writes
  (``transactions.parquet`` and ``behaviour.parquet``, on ``txn_id``; `RULE_SOURCE_SQL`).
  Missing values must be SQL ``NULL`` (Parquet written from pandas stores NaN as null);
  every condition is guarded by ``IS NOT NULL``, so a predicate is never NULL and
  ``NOT (...)`` is exactly the complement, as ``~Rule.mask`` is.
* JSON Logic (https://jsonlogic.com) reads one record per transaction with the same column
  names; a missing value is ``null`` or an absent key (JSON has no NaN). Every condition is
  guarded by ``{"!==": [{"var": name}, null]}``, since JSON Logic coerces ``null`` to 0 in
  comparisons (strict, because implementations disagree on loose ``false != null``).
  Numbers are compared with ``<=``/``>``, booleans and categories strictly
  (``===``/``!==``: ``"1"`` is not ``true``). JSON Logic reads a dot in a variable name as
  a path into nested data, so a rule over a column whose name holds a dot has no JSON
  Logic form (None).

>>> from ops.risk._rules import Condition, Rule
>>> rule = Rule(cluster=3, conditions=(Condition("amount", ">", 500.0),))
>>> rule_to_sql(rule)
'("amount" IS NOT NULL AND "amount" > 500.0)'
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ops.risk._rules import Condition, Rule

#: The relation every rule's SQL predicate is written against, in a run's output folder.
RULE_SOURCE_SQL = "transactions JOIN behaviour USING (txn_id)"

_SQL_OPERATORS = {"<=": "<=", ">": ">", "==": "=", "!=": "<>"}
_JSON_LOGIC_OPERATORS = {"<=": "<=", ">": ">", "==": "===", "!=": "!=="}


def quote_identifier(name: str) -> str:
    """Quote a SQL identifier, inner quotes doubled: any column name is safe."""
    return '"' + name.replace('"', '""') + '"'


def sql_literal(value: float | str | bool) -> str:
    """Write a SQL literal: ``TRUE``/``FALSE``, a float in full precision, or a string."""
    value = _plain(value)
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        number = float(value)
        if not np.isfinite(number):
            raise ValueError(f"a rule threshold must be finite, got {value!r}")
        return repr(number)
    return "'" + str(value).replace("'", "''") + "'"


def condition_to_sql(condition: Condition) -> str:
    """Write one condition as a parenthesised SQL predicate, false (not NULL) on NULL."""
    column = quote_identifier(condition.feature)
    test = f"{column} {_SQL_OPERATORS[condition.op]} {sql_literal(condition.value)}"
    return f"({column} IS NOT NULL AND {test})"


def rule_to_sql(rule: Rule) -> str:
    """Write the rule as a ``WHERE`` predicate over `RULE_SOURCE_SQL`."""
    return " AND ".join(condition_to_sql(c) for c in rule.conditions) or "TRUE"


def condition_to_json_logic(condition: Condition) -> dict[str, Any]:
    """Write one condition as JSON Logic, false on a null or absent value."""
    var = {"var": condition.feature}
    test = {_JSON_LOGIC_OPERATORS[condition.op]: [var, _plain(condition.value)]}
    return {"and": [{"!==": [var, None]}, test]}


def rule_to_json_logic(rule: Rule) -> dict[str, Any] | None:
    """Write the rule as one JSON Logic expression; None when a column name holds a dot."""
    if any("." in c.feature for c in rule.conditions):
        return None
    return {"and": [condition_to_json_logic(c) for c in rule.conditions] or [True]}


def engine_forms(rule: Rule) -> dict[str, Any]:
    """Give ``{"sql": ..., "json_logic": ...}``, written beside each rule in ``rules.json``."""
    return {"sql": rule_to_sql(rule), "json_logic": rule_to_json_logic(rule)}


def _plain(value: float | str | bool) -> float | str | bool:
    """Turn NumPy scalars into the Python values JSON and SQL literals need."""
    return value.item() if isinstance(value, np.generic) else value
