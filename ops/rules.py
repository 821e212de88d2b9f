"""Readable rules and narratives for risky clusters.

FinDeepBehaviorCluster turns each risky cluster into rules over the risk experts'
intuitive features, with support and precision, for investigators and for the
real-time engine. Here: a shallow, class-balanced decision tree separates one
cluster from the rest; every leaf predicting the cluster is a conjunctive rule;
rules are simplified, re-scored on the raw features (what an engine will see)
and the best 1-3 kept. `Rule.to_dict` is the engine's contract.

>>> rule = Rule(cluster=3, conditions=(Condition("amount", ">", 500.0),))
>>> Rule.from_dict(rule.to_dict()) == rule
True
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.tree import DecisionTreeClassifier

OPERATORS = ("<=", ">", "==", "!=")

#: Plain-language templates for features the synthetic shop and most shops have:
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

    ``support`` counts matched transactions, ``precision`` is the share of them in
    the cluster, ``recall`` the share of the cluster matched; all measured on raw
    features over the whole window.
    """

    cluster: int
    conditions: tuple[Condition, ...]
    support: int = 0
    precision: float = float("nan")
    recall: float = float("nan")

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
            "conditions": [c.to_dict() for c in self.conditions],
            "support": int(self.support),
            "precision": _json_float(self.precision),
            "recall": _json_float(self.recall),
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
        )

    def __eq__(self, other: object) -> bool:
        # NaN scores would make an unscored rule unequal to its own round-trip
        if not isinstance(other, Rule):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash((self.cluster, self.conditions))


def rules_to_json(rules: Mapping[int, Sequence[Rule]] | Sequence[Rule], indent: int = 2) -> str:
    """``rules.json``: a flat list of rule dicts, whatever the grouping passed in."""
    flat = [r for rs in rules.values() for r in rs] if isinstance(rules, Mapping) else rules
    return json.dumps([r.to_dict() for r in flat], indent=indent)


def rules_from_json(text: str) -> list[Rule]:
    """Inverse of `rules_to_json`."""
    return [Rule.from_dict(d) for d in json.loads(text)]


# --------------------------------------------------------------------------- extraction


class _Features:
    """The raw feature frame, prepared once for every cluster and candidate rule.

    Holds (a) the encoding schema for the tree: numeric columns (missing values
    as the median), booleans as 0/1, and the ``max_categories`` most frequent
    values of each categorical column one-hot; and (b) per-column arrays for
    evaluating conditions, with categories factorised so ``==`` is an integer
    compare. At 1M rows and 10 clusters this took rule extraction from ~40 s to
    a few seconds; the semantics are `Condition.mask`'s exactly.
    """

    def __init__(self, features: pd.DataFrame, max_categories: int) -> None:
        self.frame = features
        self.n = len(features)
        self.meta: list[tuple[str, str, Any]] = []  # (feature, kind, category)
        self._num: dict[str, np.ndarray] = {}
        self._bool: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._cat: dict[str, tuple[np.ndarray, pd.Index]] = {}
        self._median: dict[str, float] = {}
        for name in features.columns:
            s = features[name]
            if pd.api.types.is_bool_dtype(s):
                self.meta.append((name, "bool", None))
            elif pd.api.types.is_numeric_dtype(s):
                x = self.numeric(name)
                # the tree sees missing values as the median; rules are re-scored on raw
                # values, where missing matches nothing, so the reported precision is honest
                self._median[name] = float(np.nanmedian(x)) if np.isfinite(x).any() else 0.0
                self.meta.append((name, "num", None))
            elif pd.api.types.is_datetime64_any_dtype(s):
                continue  # time belongs to the timeline, not to a rule an engine applies later
            else:
                codes, uniques = self.categorical(name)
                counts = np.bincount(codes[codes >= 0], minlength=len(uniques))
                for i in np.argsort(-counts, kind="stable")[:max_categories]:
                    if counts[i]:
                        self.meta.append((name, "cat", str(uniques[i])))

    def numeric(self, name: str) -> np.ndarray:
        if name not in self._num:
            col = pd.to_numeric(self.frame[name], errors="coerce")
            self._num[name] = col.to_numpy(dtype=np.float64, na_value=np.nan)
        return self._num[name]

    def boolean(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(is True, is known)."""
        if name not in self._bool:
            col = self.frame[name]
            truth = col.fillna(False).astype(bool).to_numpy(dtype=bool)
            self._bool[name] = (truth, col.notna().to_numpy())
        return self._bool[name]

    def categorical(self, name: str) -> tuple[np.ndarray, pd.Index]:
        if name not in self._cat:
            codes, uniques = pd.factorize(self.frame[name].astype("string"))
            self._cat[name] = (codes, pd.Index(uniques))
        return self._cat[name]

    def filled(self, name: str, rows: np.ndarray) -> np.ndarray:
        """Numeric column at ``rows`` with missing values as the median, as the tree sees it."""
        x = self.numeric(name)[rows]
        return np.where(np.isfinite(x), x, self._median[name])

    def matrix(self, rows: np.ndarray) -> np.ndarray:
        """Tree input for ``rows``, float32 as the tree uses internally anyway."""
        out = np.empty((len(rows), len(self.meta)), dtype=np.float32)
        for j, (name, kind, cat) in enumerate(self.meta):
            if kind == "num":
                out[:, j] = self.filled(name, rows)
            elif kind == "bool":
                out[:, j] = self.boolean(name)[0][rows]
            else:
                codes, uniques = self.categorical(name)
                out[:, j] = codes[rows] == uniques.get_loc(cat)
        return out

    def mask(self, c: Condition) -> np.ndarray:
        """`Condition.mask` on the cached arrays."""
        if c.op in ("<=", ">"):
            x = self.numeric(c.feature)
            with np.errstate(invalid="ignore"):
                return x <= c.value if c.op == "<=" else x > c.value
        if isinstance(c.value, bool):
            truth, known = self.boolean(c.feature)
            eq = truth == c.value
        else:
            codes, uniques = self.categorical(c.feature)
            known = codes >= 0
            idx = uniques.get_indexer([str(c.value)])[0]
            eq = codes == idx if idx >= 0 else np.zeros(self.n, dtype=bool)
        return known & (eq if c.op == "==" else ~eq)

    def rule_mask(self, conditions: Iterable[Condition]) -> np.ndarray:
        out = np.ones(self.n, dtype=bool)
        for c in conditions:
            out &= self.mask(c)
        return out


def _nice_threshold(x: np.ndarray, t: float, member: np.ndarray, slack: int = 0) -> float:
    """The roundest cut near the tree's threshold ``t`` that moves at most ``slack`` rows.

    sklearn splits at midpoints (1.5, 0.31764...). Any cut moving no training row
    gives the same split; allowing ``slack`` members and ``slack`` non-members to
    change sides buys "at most 1.5 days" instead of "at most 1.495 days" on dense
    data. The rule is re-scored on all rows afterwards, so nothing is misreported.
    """
    x_mem, x_rest = x[member], x[~member]
    top = math.ceil(math.log10(max(abs(t), 1e-12))) + 1
    for exp in range(top, -10, -1):
        for mult in (5, 2, 1):  # 500 before 200 before 100 at the same magnitude
            step = mult * 10.0**exp
            down, up = math.floor(t / step) * step, math.ceil(t / step) * step
            for c in sorted({round(down, 10), round(up, 10)}, key=lambda v: abs(v - t)):
                a, b = min(c, t), max(c, t)
                moved_mem = np.count_nonzero((x_mem > a) & (x_mem <= b))
                moved_rest = np.count_nonzero((x_rest > a) & (x_rest <= b))
                if moved_mem <= slack and moved_rest <= slack:
                    return c
    return float(t)


def _leaf_paths(
    tree: DecisionTreeClassifier,
    meta: Sequence[tuple[str, str, Any]],
    raw: Mapping[str, np.ndarray],
    member: np.ndarray,
    slack: int,
) -> list[list[Condition]]:
    """Condition lists of the leaves whose balanced majority is the cluster.

    Thresholds are rounded against the float64 values (``raw``), not the tree's float32
    copy, in which 2.99 is 2.9900000095 and the roundest cut would become 2.995.
    """
    t = tree.tree_
    paths: list[list[Condition]] = []

    def walk(node: int, conds: list[Condition]) -> None:
        if t.children_left[node] == -1:
            if t.value[node][0][1] > t.value[node][0][0]:
                paths.append(conds)
            return
        j, thr = int(t.feature[node]), float(t.threshold[node])
        name, kind, cat = meta[j]
        if kind == "num":
            v = _nice_threshold(raw[name], thr, member, slack)
            left, right = Condition(name, "<=", v), Condition(name, ">", v)
        elif kind == "bool":
            left, right = Condition(name, "==", False), Condition(name, "==", True)
        else:
            left, right = Condition(name, "!=", cat), Condition(name, "==", cat)
        walk(int(t.children_left[node]), [*conds, left])
        walk(int(t.children_right[node]), [*conds, right])

    walk(0, [])
    return paths


def _simplify(conds: Iterable[Condition]) -> tuple[Condition, ...]:
    """Keep the tightest bound per feature and side; an ``==`` makes ``!=`` on it redundant."""
    upper: dict[str, Condition] = {}
    lower: dict[str, Condition] = {}
    equal: dict[str, Condition] = {}
    other: list[Condition] = []
    for c in conds:
        if c.op == "<=":
            if c.feature not in upper or c.value < upper[c.feature].value:  # type: ignore[operator]
                upper[c.feature] = c
        elif c.op == ">":
            if c.feature not in lower or c.value > lower[c.feature].value:  # type: ignore[operator]
                lower[c.feature] = c
        elif c.op == "==":
            equal[c.feature] = c
        elif c not in other:
            other.append(c)
    other = [c for c in other if c.feature not in equal]
    merged = [*equal.values(), *lower.values(), *upper.values(), *other]
    order = {c: i for i, c in enumerate(conds)} if isinstance(conds, list) else {}
    return tuple(sorted(merged, key=lambda c: order.get(c, 0)))


def _score(rule: Rule, features: _Features, member: np.ndarray) -> Rule:
    m = features.rule_mask(rule.conditions)
    support = int(m.sum())
    hits = int((m & member).sum())
    return Rule(
        cluster=rule.cluster,
        conditions=rule.conditions,
        support=support,
        precision=hits / support if support else 0.0,
        recall=hits / int(member.sum()) if member.any() else 0.0,
    )


def _prune(rule: Rule, features: _Features, member: np.ndarray, tol: float) -> Rule:
    """Drop conditions costing under ``tol`` precision: short rules read and generalise better."""
    best = _score(rule, features, member)
    improved = True
    while improved and len(best.conditions) > 1:
        improved = False
        for i in range(len(best.conditions)):
            cand = _score(
                Rule(best.cluster, best.conditions[:i] + best.conditions[i + 1 :]), features, member
            )
            if cand.precision >= best.precision - tol and cand.recall >= best.recall:
                best, improved = cand, True
                break
    return best


def extract_rules(
    features: pd.DataFrame | _Features,
    labels: np.ndarray | pd.Series,
    cluster: int,
    *,
    max_depth: int = 3,
    max_rules: int = 3,
    min_precision: float = 0.5,
    min_leaf_share: float = 0.02,
    max_categories: int = 20,
    max_rows: int = 100_000,
    prune_tol: float = 0.01,
    round_slack: float = 0.01,
    seed: int = 0,
) -> list[Rule]:
    """Best 1-``max_rules`` rules telling ``cluster`` apart from every other transaction.

    Parameters
    ----------
    features : intuitive features, one row per transaction (numeric, bool, or
        categorical as strings; datetimes are ignored). Drop identifiers, labels
        and anything an engine will not have at decision time before calling.
    labels : cluster id per row.
    min_leaf_share : smallest leaf as a share of the cluster, so rules describe
        groups, not individuals.
    max_rows : other-cluster rows are subsampled to this many for fitting only;
        scores always use every row.
    round_slack : thresholds are rounded as long as at most this share of the
        cluster's size, in members and in non-members each, changes sides.

    Rules are ranked by F1 and added greedily while each covers cluster members
    the earlier ones miss; rules below ``min_precision`` are dropped, so an
    unexplainable cluster returns ``[]``.
    """
    prepared = features if isinstance(features, _Features) else _Features(features, max_categories)
    labels = np.asarray(labels)
    member = labels == cluster
    n_member = int(member.sum())
    if n_member == 0 or n_member == len(labels) or not prepared.meta:
        return []
    rows = np.arange(len(labels))
    rest = rows[~member]
    if len(rest) > max_rows:
        rest = np.random.default_rng(seed).choice(rest, max_rows, replace=False)
    fit_rows = np.sort(np.r_[rows[member], rest])
    X = prepared.matrix(fit_rows)
    tree = DecisionTreeClassifier(
        max_depth=max_depth,
        class_weight="balanced",
        min_samples_leaf=max(3, int(min_leaf_share * n_member)),
        random_state=seed,
    ).fit(X, member[fit_rows])

    candidates: dict[tuple[Condition, ...], Rule] = {}
    raw = {
        name: prepared.filled(name, fit_rows) for name, kind, _ in prepared.meta if kind == "num"
    }
    slack = int(round_slack * n_member)
    for conds in _leaf_paths(tree, prepared.meta, raw, member[fit_rows], slack):
        rule = _prune(Rule(int(cluster), _simplify(conds)), prepared, member, prune_tol)
        if rule.precision >= min_precision and rule.conditions not in candidates:
            candidates[rule.conditions] = rule

    def f1(r: Rule) -> float:
        return 2 * r.precision * r.recall / (r.precision + r.recall) if r.support else 0.0

    chosen: list[Rule] = []
    covered = np.zeros(len(labels), dtype=bool)
    for rule in sorted(candidates.values(), key=lambda r: (-f1(r), -r.precision)):
        hits = prepared.rule_mask(rule.conditions) & member
        if (hits & ~covered).sum() >= max(1, 0.05 * n_member):
            chosen.append(rule)
            covered |= hits
        if len(chosen) == max_rules:
            break
    return chosen


def extract_all_rules(
    features: pd.DataFrame,
    labels: np.ndarray | pd.Series,
    clusters: Iterable[int],
    **kwargs: Any,
) -> dict[int, list[Rule]]:
    """`extract_rules` for each of ``clusters`` (typically the risky ones), sharing the
    feature preparation between them."""
    prepared = _Features(features, kwargs.pop("max_categories", 20))
    return {int(c): extract_rules(prepared, labels, int(c), **kwargs) for c in clusters}


# --------------------------------------------------------------------------- behaviour


@dataclass(frozen=True)
class Behaviour:
    """What a cluster's sessions look like, from sequence statistics."""

    n: int
    typical_path: tuple[str, ...] = ()
    typical_path_share: float = float("nan")
    same_path_share: float = float("nan")
    median_dwell: float = float("nan")
    median_duration: float = float("nan")
    median_events: float = float("nan")
    #: the typical path is the whole session (not just its start) for most members
    complete: bool = False

    def describe(self) -> str:
        """E.g. ``"88% follow home → item → checkout, reaching checkout in a median of 18 s
        with a median of 0.6 s between pages"``; ``"start with"`` when only a prefix is shared."""
        bits = []
        if self.typical_path:
            verb = "follow" if self.complete else "start with"
            bits.append(f"{self.typical_path_share:.0%} {verb} " + " → ".join(self.typical_path))
        if not math.isnan(self.median_duration):
            dur = _fmt_seconds(self.median_duration)
            if self.typical_path and self.complete:
                bits.append(f"reaching {self.typical_path[-1]} in a median of {dur}")
            else:
                bits.append(f"sessions lasting a median of {dur}")
        text = ", ".join(bits)
        if not math.isnan(self.median_dwell):
            gap = f"a median of {_fmt_seconds(self.median_dwell)} between pages"
            text = f"{text} with {gap}" if text else gap
        return text

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "n": self.n,
            "typical_path": list(self.typical_path),
            "typical_path_share": _json_float(self.typical_path_share),
            "same_path_share": _json_float(self.same_path_share),
            "median_dwell": _json_float(self.median_dwell),
            "median_duration": _json_float(self.median_duration),
            "median_events": _json_float(self.median_events),
            "complete": self.complete,
            "text": self.describe(),
        }


def _split_path(p: object, sep: str | None) -> tuple[str, ...]:
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return ()
    if isinstance(p, list | tuple | np.ndarray):
        return tuple(str(x) for x in p)
    s = str(p)
    if sep is None:
        sep = next((c for c in (">", "|", ",", " ") if c in s), None)
    return tuple(t.strip() for t in s.split(sep)) if sep else (s,)


def describe_behaviour(
    members: pd.DataFrame, *, sep: str | None = None, min_share: float = 0.5, max_len: int = 8
) -> Behaviour:
    """Sequence profile of one cluster's transactions.

    ``members`` may hold ``path`` (event path as a string joined by ``>``, ``|``,
    ``,`` or spaces, or as a list), ``median_dwell`` and ``duration`` (seconds),
    ``n_events``; absent columns leave their fields NaN. The typical path is the
    longest prefix shared by at least ``min_share`` of members (up to ``max_len``
    events), which survives the odd extra click that kills an exact-match mode.
    """

    def med(col: str) -> float:
        return (
            float(pd.to_numeric(members[col], errors="coerce").median())
            if col in members
            else float("nan")
        )

    typical: tuple[str, ...] = ()
    typical_share = same_share = float("nan")
    modal: tuple[str, ...] | None = None
    if "path" in members and len(members):
        paths = [_split_path(p, sep) for p in members["path"]]
        n = len(paths)
        modal, count = Counter(paths).most_common(1)[0]
        same_share = count / n
        for k in range(1, max_len + 1):
            prefixes = Counter(p[:k] for p in paths if len(p) >= k)
            if not prefixes:
                break
            prefix, count = prefixes.most_common(1)[0]
            if count / n < min_share:
                break
            typical, typical_share = prefix, count / n
    return Behaviour(
        n=len(members),
        typical_path=typical,
        typical_path_share=typical_share,
        same_path_share=same_share,
        median_dwell=med("median_dwell"),
        median_duration=med("duration"),
        median_events=med("n_events"),
        complete=bool(typical) and typical == modal,
    )


# --------------------------------------------------------------------------- narrative


def narrate(
    cluster_summary: Mapping[str, Any] | pd.Series,
    rules: Sequence[Rule],
    behaviour: Behaviour | None = None,
) -> str:
    """One sentence an investigator can act on.

    ``cluster_summary`` is a row of `ops.risk.assess_risk` (``size``, and when
    present ``n_labelled``, ``fraud_rate``, ``coordination_flag``,
    ``coordination_score``). Uses the best rule only; the others are in the table.
    E.g. "412 transactions: account at most 2 days old, ship-to country differs
    from card country, home → item → checkout (90% start this way), a median of
    0.6 s between pages; 96% confirmed fraud where labelled (50 labelled)."
    """
    s = dict(cluster_summary)
    size = int(s.get("size", 0))
    head = f"{size:,} transaction{'s' if size != 1 else ''}"
    body = []
    if rules:
        body.append(rules[0].describe())
    if behaviour is not None and behaviour.describe():
        body.append(behaviour.describe())
    n_lab = int(s.get("n_labelled", 0) or 0)
    rate = s.get("fraud_rate", float("nan"))
    if n_lab and rate == rate:
        tail = f"{rate:.0%} confirmed fraud where labelled ({n_lab:,} labelled)"
    else:
        tail = "no labels yet"
    if s.get("coordination_flag"):
        tail += f"; coordinated (score {float(s.get('coordination_score', 0)):.2f})"
    text = head + (": " + ", ".join(body) if body else "") + "; " + tail + "."
    return text


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


def _fmt_seconds(s: float) -> str:
    if s < 10:
        return f"{s:.2g} s"
    if s < 120:
        return f"{s:.0f} s"
    return f"{s / 60:.0f} min"


def _json_float(x: float) -> float | None:
    return None if x is None or math.isnan(x) else float(x)
