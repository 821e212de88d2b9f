"""Rules for risky clusters: the contract a real-time engine loads, and its wording.

FinDeepBehaviorCluster turns each risky cluster into rules over the risk experts'
intuitive features, with support and precision, for investigators and for the
real-time engine (learned in `ops.risk._rule_learner`). `Rule.to_dict` is the engine's contract.

Examples
--------
>>> rule = Rule(cluster=3, conditions=(Condition("amount", ">", 500.0),))
>>> Rule.from_dict(rule.to_dict()) == rule
True
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

OPERATORS = ("<=", ">", "==", "!=")

#: Plain-language templates for features the synthetic shop and most shops have, and for the
#: session statistics every run computes:
#: numeric -> (text for "<=", text for ">"), boolean -> (text for True, text for False).
DEFAULT_PHRASES: dict[str, tuple[str, str]] = {
    "account_age_days": ("account at most {v} days old", "account older than {v} days"),
    "amount": ("amount at most {v}", "amount over {v}"),
    "country_mismatch": (
        "ship-to country differs from card country",
        "ship-to country matches card country",
    ),
    "is_new_shipping_address": ("new shipping address", "known shipping address"),
    "txn_count_24h": (
        "at most {v} transactions from the device in 24 h",
        "more than {v} transactions from the device in 24 h",
    ),
    # session statistics (ops.features), which an engine computes from the live session
    "median_dwell": ("at most {v} s between pages", "over {v} s between pages"),
    "dwell_cv": ("page timing regular (dwell CV at most {v})", "dwell CV over {v}"),
    "duration": ("session at most {v} s long", "session longer than {v} s"),
    "n_events": ("at most {v} pages in the session", "more than {v} pages in the session"),
    # how dwell fits the pages (ops.features.PageDwell), against the window's typical dwell per page
    "dwell_page_fit": (
        "dwell-to-page fit at most {v} (long waits not where people wait)",
        "dwell-to-page fit over {v}",
    ),
    "dwell_off_page": (
        "dwell at most {v}x off each page's usual",
        "dwell over {v}x off each page's usual",
    ),
}

_UNITS = {"_days": " days", "_seconds": " s", "_sec": " s", "_s": " s", "_ms": " ms",
          "_min": " min", "_hours": " h", "_h": " h"}  # fmt: skip


# --------------------------------------------------------------------------- rules


@dataclass(frozen=True)
class Condition:
    """One test on one raw feature: numeric ``<=``/``>``, boolean or category ``==``/``!=``."""

    feature: str
    op: str
    value: float | str | bool

    def __post_init__(self) -> None:
        if self.op not in OPERATORS:
            raise ValueError(f"operator {self.op!r} not in {OPERATORS}")

    def mask(self, df: pd.DataFrame) -> np.ndarray:
        """Rows satisfying the test; a missing value satisfies no test, as in an engine."""
        col = df[self.feature]
        if self.op in ("<=", ">"):
            x = pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64)
            with np.errstate(invalid="ignore"):
                return x <= self.value if self.op == "<=" else x > self.value
        known = col.notna().to_numpy()
        if isinstance(self.value, bool):
            eq = col.fillna(False).astype(bool).to_numpy() == self.value
        else:
            eq = (col.astype("string") == str(self.value)).fillna(False).to_numpy(dtype=bool)
        return known & (eq if self.op == "==" else ~eq)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: ``{"feature", "op", "value"}``."""
        value = self.value
        if isinstance(value, np.generic):
            value = value.item()
        return {"feature": self.feature, "op": self.op, "value": value}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Condition:
        """Inverse of `to_dict`."""
        return cls(str(d["feature"]), str(d["op"]), d["value"])

    def describe(self, phrases: Mapping[str, tuple[str, str]] | None = None) -> str:
        """Plain words for an analyst, e.g. ``"account at most 2 days old"``."""
        phrases = {**DEFAULT_PHRASES, **(phrases or {})}
        template = phrases.get(self.feature)
        name, unit = _humanise(self.feature)
        if isinstance(self.value, bool):
            truthy = self.value == (self.op == "==")
            if template:
                return template[0 if truthy else 1]
            if self.feature.startswith("is_"):
                return name[3:] if truthy else f"not {name[3:]}"
            if self.feature.startswith("has_"):
                return name if truthy else f"no {name[4:]}"
            return name if truthy else f"no {name}"
        if self.op in ("==", "!="):
            return f"{name} {'is' if self.op == '==' else 'is not'} {self.value}"
        v = _fmt_number(float(self.value))
        if template:
            return template[0 if self.op == "<=" else 1].format(v=v)
        return f"{name} {'at most' if self.op == '<=' else 'over'} {v}{unit}"


@dataclass(frozen=True)
class Rule:
    """A conjunction of conditions predicting membership of ``cluster``.

    A ring often splits into sibling clusters an engine cannot tell apart; a rule may then
    describe the whole group, ``clusters`` (which always includes ``cluster``, the one it is
    filed under; a single-cluster rule has ``clusters == (cluster,)``). ``support`` counts
    matched transactions, ``precision`` is the share of them in the group, ``recall`` the
    share of the group matched; all measured on raw features over the whole window.
    """

    cluster: int
    conditions: tuple[Condition, ...]
    support: int = 0
    precision: float = float("nan")
    recall: float = float("nan")
    clusters: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        group = tuple(sorted({int(self.cluster), *(int(c) for c in self.clusters)}))
        object.__setattr__(self, "clusters", group)

    def mask(self, df: pd.DataFrame) -> np.ndarray:
        """Rows matching every condition."""
        out = np.ones(len(df), dtype=bool)
        for c in self.conditions:
            out &= c.mask(df)
        return out

    def describe(self, phrases: Mapping[str, tuple[str, str]] | None = None) -> str:
        """Conditions in words, joined by commas."""
        return ", ".join(c.describe(phrases) for c in self.conditions) or "any transaction"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict, including the plain-language ``text``."""
        return {
            "cluster": int(self.cluster),
            "clusters": list(self.clusters),
            "conditions": [c.to_dict() for c in self.conditions],
            "support": int(self.support),
            "precision": json_float(self.precision),
            "recall": json_float(self.recall),
            "text": self.describe(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Rule:
        """Inverse of `to_dict` (``text`` is derived, so ignored)."""
        return cls(
            cluster=int(d["cluster"]),
            conditions=tuple(Condition.from_dict(c) for c in d["conditions"]),
            support=int(d.get("support", 0)),
            precision=float("nan") if d.get("precision") is None else float(d["precision"]),
            recall=float("nan") if d.get("recall") is None else float(d["recall"]),
            clusters=tuple(int(c) for c in d.get("clusters", ())),
        )

    def __eq__(self, other: object) -> bool:
        # NaN scores would make an unscored rule unequal to its own round-trip
        if not isinstance(other, Rule):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash((self.clusters, self.conditions))


def rules_to_json(rules: Mapping[int, Sequence[Rule]] | Sequence[Rule], indent: int = 2) -> str:
    """``rules.json``: a flat list of rule dicts, whatever the grouping passed in."""
    flat = [r for rs in rules.values() for r in rs] if isinstance(rules, Mapping) else rules
    return json.dumps([r.to_dict() for r in flat], indent=indent)


def rules_from_json(text: str) -> list[Rule]:
    """Inverse of `rules_to_json`."""
    return [Rule.from_dict(d) for d in json.loads(text)]


# --------------------------------------------------------------------------- wording helpers


def _humanise(feature: str) -> tuple[str, str]:
    """``"account_age_days"`` -> (``"account age"``, ``" days"``)."""
    unit = ""
    for suffix, u in _UNITS.items():
        if feature.endswith(suffix) and len(feature) > len(suffix):
            feature, unit = feature[: -len(suffix)], u
            break
    return feature.replace("_", " ").strip(), unit


def _fmt_number(v: float) -> str:
    """Exact enough never to misstate a threshold (2.995 must not read as 3)."""
    if v == int(v) and abs(v) < 1e15:
        return f"{int(v):,}"
    return f"{v:,.6g}"


def format_seconds(s: float) -> str:
    if s < 10:
        return f"{s:.2g} s"
    if s < 120:
        return f"{s:.0f} s"
    return f"{s / 60:.0f} min"


def json_float(x: float) -> float | None:
    return None if x is None or math.isnan(x) else float(x)
