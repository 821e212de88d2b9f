"""Learning rules that tell one cluster apart from all other traffic.

A shallow, class-balanced decision tree separates the cluster from the rest; each leaf that
predicts the cluster is a conjunctive rule; rules are simplified, re-scored on the raw features
(what a real-time engine will see) and the best 1-3 kept.
"""

from __future__ import annotations

import copy
import functools
import math
import os
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from numbers import Integral
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from ops.risk._balanced_tree import SortedRows, SplitTree, fit_balanced_tree
from ops.risk._rules import Condition, Rule

_T = TypeVar("_T")
_R = TypeVar("_R")


class _Features:
    """The raw feature frame, prepared once for every cluster and candidate rule.

    Holds (a) the encoding schema for the tree: numeric columns (missing values
    as the median), booleans as 0/1, and the ``max_categories`` most frequent
    values of each categorical column one-hot; and (b) per-column arrays for
    evaluating conditions, with categories factorised so ``==`` is an integer
    compare, so every candidate rule of every cluster is scored without re-encoding
    the frame (figures in benchmarks/README.md); the semantics are `Condition.mask`'s
    exactly.
    """

    def __init__(self, features: pd.DataFrame, max_categories: int) -> None:
        self.frame = features
        self.n = len(features)
        self.meta: list[tuple[str, str, Any]] = []  # (feature, kind, category)
        self._num: dict[str, np.ndarray] = {}
        self._bool: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._cat: dict[str, tuple[np.ndarray, pd.Index]] = {}
        self._median: dict[str, float] = {}
        self._tree: dict[str, np.ndarray] = {}  # numeric columns as the tree gets them
        for name in features.columns:
            s = features[name]
            if pd.api.types.is_bool_dtype(s):
                self.boolean(name)  # every cache filled here: threads then only read them
                self.meta.append((name, "bool", None))
            elif pd.api.types.is_numeric_dtype(s):
                x = self.numeric(name)
                # the tree sees missing values as the median; rules are re-scored on raw
                # values, where missing matches nothing, so the reported precision is honest
                self._median[name] = float(np.nanmedian(x)) if np.isfinite(x).any() else 0.0
                self.meta.append((name, "num", None))
                # every row's tree value once: each cluster's fit reads its members' rows
                self._tree[name] = self.filled(name, slice(None)).astype(np.float32)
            elif pd.api.types.is_datetime64_any_dtype(s):
                continue  # time belongs to the timeline, not to a rule an engine applies later
            else:
                codes, uniques = self.categorical(name)
                counts = np.bincount(codes[codes >= 0], minlength=len(uniques))
                for i in np.argsort(-counts, kind="stable")[:max_categories]:
                    if counts[i]:
                        self.meta.append((name, "cat", str(uniques[i])))

    def take(self, rows: np.ndarray) -> _Features:
        """These ``rows`` alone, in this order, encoded as for all rows (medians, categories)."""
        out = copy.copy(self)
        out.frame = self.frame.iloc[rows]
        out.n = len(rows)
        out._num = {name: x[rows] for name, x in self._num.items()}
        out._bool = {name: (t[rows], k[rows]) for name, (t, k) in self._bool.items()}
        out._cat = {name: (c[rows], u) for name, (c, u) in self._cat.items()}
        out._tree = {name: x[rows] for name, x in self._tree.items()}
        return out

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

    def filled(self, name: str, rows: np.ndarray | slice) -> np.ndarray:
        """Numeric column at ``rows`` with missing values as the median, as the tree sees it."""
        x = self.numeric(name)[rows]
        return np.where(np.isfinite(x), x, self._median[name])

    def matrix(self, rows: np.ndarray) -> np.ndarray:
        """Tree input for ``rows``, float32 as the tree uses internally anyway.

        Column-major: the tree reads one feature of many rows at a time (13 % faster fits
        measured at 1M, the same trees), and each column is written in one stride.
        """
        out = np.empty((len(rows), len(self.meta)), dtype=np.float32, order="F")
        for j, (name, kind, cat) in enumerate(self.meta):
            if kind == "num":
                out[:, j] = self._tree[name][rows]
            elif kind == "bool":
                out[:, j] = self.boolean(name)[0][rows]
            else:
                codes, uniques = self.categorical(name)
                out[:, j] = codes[rows] == uniques.get_loc(cat)
        return out

    @property
    def binary(self) -> np.ndarray:
        """Which tree input columns hold only 0 and 1 (flags and one-hot categories)."""
        return np.array([kind != "num" for _, kind, _ in self.meta], dtype=bool)

    def sorted_rows(self, rows: np.ndarray) -> SortedRows:
        """Tree input for ``rows``, each numeric column sorted (`SortedRows`)."""
        return SortedRows(self.matrix(rows), self.binary)

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


class _ConditionMasks:
    """Row masks of rules, each condition's computed once while one cluster is at hand.

    Pruning re-scores every shorter form of every leaf's rule, and a cluster's rules share
    conditions; each condition's mask is a pass over all rows.
    """

    def __init__(self, features: _Features) -> None:
        self.features = features
        self._masks: dict[Condition, np.ndarray] = {}

    def rule_mask(self, conditions: Iterable[Condition]) -> np.ndarray:
        """Rows that meet every condition (`_Features.mask`'s semantics)."""
        out = np.ones(self.features.n, dtype=bool)
        for c in conditions:
            if c not in self._masks:
                self._masks[c] = self.features.mask(c)
            out &= self._masks[c]
        return out

    def any_rule(self, rules: Iterable[Rule]) -> np.ndarray:
        """Rows that meet every condition of at least one of ``rules``."""
        out = np.zeros(self.features.n, dtype=bool)
        for rule in rules:
            out |= self.rule_mask(rule.conditions)
        return out


class _Sample:
    """Rows of the other traffic a tree is fitted against, with their tree input, prepared once.

    ``group_alike`` learns each cluster against the same traffic (every cluster of the group
    being described is ignored), so the same sample serves hundreds of clusters: its tree
    input is built and its numeric columns sorted once, not once per cluster.
    """

    def __init__(self, prepared: _Features, rows: np.ndarray) -> None:
        self.rows = rows
        self.tree_input = prepared.sorted_rows(rows)
        self.raw = {
            name: prepared.filled(name, self.rows)
            for name, kind, _ in prepared.meta
            if kind == "num"
        }

    @classmethod
    def draw(cls, prepared: _Features, rest: np.ndarray, max_rows: int, seed: int) -> _Sample:
        """At most ``max_rows`` of ``rest``, drawn with ``seed`` (`pick`)."""
        return cls(prepared, cls.pick(rest, max_rows, seed))

    @staticmethod
    def pick(rest: np.ndarray, max_rows: int, seed: int) -> np.ndarray:
        """At most ``max_rows`` of ``rest``, drawn with ``seed`` (all, in order, if no more)."""
        if len(rest) > max_rows:
            return np.random.default_rng(seed).choice(rest, max_rows, replace=False)
        return rest

    def with_members(
        self, prepared: _Features, members: np.ndarray
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """``(rows, raw)`` of this sample, then the members (disjoint from it)."""
        rows = np.r_[self.rows, members]
        raw = {
            name: np.r_[values, prepared.filled(name, members)] for name, values in self.raw.items()
        }
        return rows, raw


def _nice_threshold(x: np.ndarray, t: float, member: np.ndarray, slack: int = 0) -> float:
    """The roundest cut near the tree's threshold ``t`` that moves at most ``slack`` rows.

    The tree splits at midpoints (1.5, 0.31764...), as scikit-learn's does. Any cut moving
    no training row gives the same split; allowing ``slack`` members and ``slack``
    non-members to change sides buys "at most 1.5 days" instead of "at most 1.495 days" on dense
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
    tree: SplitTree,
    meta: Sequence[tuple[str, str, Any]],
    raw: Mapping[str, np.ndarray],
    member: np.ndarray,
    slack: int,
) -> list[list[Condition]]:
    """Condition lists of the leaves whose balanced majority is the cluster.

    Thresholds are rounded against the float64 values (``raw``), not the tree's float32
    copy, in which 2.99 is 2.9900000095 and the roundest cut would become 2.995.
    """
    paths: list[list[Condition]] = []

    def walk(node: int, conds: list[Condition]) -> None:
        if tree.children_left[node] == -1:
            if tree.value[node][1] > tree.value[node][0]:  # weighted members outweigh the rest
                paths.append(conds)
            return
        j, thr = int(tree.feature[node]), float(tree.threshold[node])
        name, kind, cat = meta[j]
        if kind == "num":
            v = _nice_threshold(raw[name], thr, member, slack)
            left, right = Condition(name, "<=", v), Condition(name, ">", v)
        elif kind == "bool":
            left, right = Condition(name, "==", False), Condition(name, "==", True)
        else:
            left, right = Condition(name, "!=", cat), Condition(name, "==", cat)
        walk(int(tree.children_left[node]), [*conds, left])
        walk(int(tree.children_right[node]), [*conds, right])

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


def _score(
    rule: Rule,
    masks: _ConditionMasks,
    member: np.ndarray,
    counted: np.ndarray,
    outside_weight: float = 1.0,
) -> Rule:
    """Support, precision and recall over the ``counted`` rows (all but ignored ones).

    Each counted non-member stands for ``outside_weight`` rows: a sample of the others.
    """
    m = masks.rule_mask(rule.conditions) & counted
    hits = int(np.count_nonzero(m & member))
    support = hits + outside_weight * (int(np.count_nonzero(m)) - hits)
    return Rule(
        cluster=rule.cluster,
        conditions=rule.conditions,
        support=round(support),
        precision=hits / support if support else 0.0,
        recall=hits / int(np.count_nonzero(member)) if member.any() else 0.0,
        clusters=rule.clusters,
    )


def _prune(
    rule: Rule,
    masks: _ConditionMasks,
    member: np.ndarray,
    counted: np.ndarray,
    tol: float,
    outside_weight: float = 1.0,
) -> Rule:
    """Drop conditions costing under ``tol`` precision: short rules read and generalise better."""
    best = _score(rule, masks, member, counted, outside_weight)
    improved = True
    while improved and len(best.conditions) > 1:
        improved = False
        for i in range(len(best.conditions)):
            shorter = best.conditions[:i] + best.conditions[i + 1 :]
            cand = Rule(best.cluster, shorter, clusters=best.clusters)
            cand = _score(cand, masks, member, counted, outside_weight)
            if cand.precision >= best.precision - tol and cand.recall >= best.recall:
                best, improved = cand, True
                break
    return best


def extract_rules(
    features: pd.DataFrame | _Features,
    labels: np.ndarray | pd.Series,
    cluster: int | Collection[int],
    *,
    ignore: Collection[int] = (),
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
    cluster : one cluster id, or a group of them described together.
    ignore : clusters whose rows count neither as members nor as counter-examples, in the
        fit and in the scores (siblings of the same ring, while groups are being found).
        Without it, scores count every row.
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
    group = tuple(sorted({int(cluster)} if isinstance(cluster, Integral) else set(cluster)))
    member = np.isin(labels, group)
    counted = ~np.isin(labels, [c for c in ignore if c not in group])
    return _learn_rules(
        prepared,
        member,
        counted,
        group,
        None,
        max_depth=max_depth,
        max_rules=max_rules,
        min_precision=min_precision,
        min_leaf_share=min_leaf_share,
        max_rows=max_rows,
        prune_tol=prune_tol,
        round_slack=round_slack,
        seed=seed,
    )


def _learn_rules(
    prepared: _Features,
    member: np.ndarray,
    counted: np.ndarray,
    group: tuple[int, ...],
    sample: _Sample | None,
    *,
    max_depth: int = 3,
    max_rules: int = 3,
    min_precision: float = 0.5,
    min_leaf_share: float = 0.02,
    max_rows: int = 100_000,
    prune_tol: float = 0.01,
    round_slack: float = 0.01,
    seed: int = 0,
    outside_weight: float = 1.0,
) -> list[Rule]:
    """`extract_rules` on row masks: ``member`` of the group, ``counted`` (not ignored).

    ``sample``: the other rows to fit against, when the caller shares one among clusters
    learned against the same traffic; else drawn here from the counted non-members.
    ``outside_weight``: how many rows each counted non-member stands for in the scores.
    """
    n_member = int(np.count_nonzero(member))
    if n_member == 0 or n_member == len(member) or not prepared.meta:
        return []
    if sample is None:
        sample = _Sample.draw(prepared, np.flatnonzero(~member & counted), max_rows, seed)
    if len(sample.rows) == 0:  # nothing counted to tell the members apart from
        return []
    members = np.flatnonzero(member)
    fit_rows, raw = sample.with_members(prepared, members)
    tree = fit_balanced_tree(
        sample.tree_input,
        prepared.sorted_rows(members),
        max_depth=max_depth,
        min_samples_leaf=max(3, int(min_leaf_share * n_member)),
    )

    candidates: dict[tuple[Condition, ...], Rule] = {}
    masks = _ConditionMasks(prepared)
    slack = int(round_slack * n_member)
    for conds in _leaf_paths(tree, prepared.meta, raw, member[fit_rows], slack):
        rule = Rule(group[0], _simplify(conds), clusters=group)
        rule = _prune(rule, masks, member, counted, prune_tol, outside_weight)
        if rule.precision >= min_precision and rule.conditions not in candidates:
            candidates[rule.conditions] = rule

    def f1(r: Rule) -> float:
        return 2 * r.precision * r.recall / (r.precision + r.recall) if r.support else 0.0

    chosen: list[Rule] = []
    covered = np.zeros(len(member), dtype=bool)
    for rule in sorted(candidates.values(), key=lambda r: (-f1(r), -r.precision)):
        hits = masks.rule_mask(rule.conditions) & member
        if np.count_nonzero(hits & ~covered) >= max(1, 0.05 * n_member):
            chosen.append(rule)
            covered |= hits
        if len(chosen) == max_rules:
            break
    return chosen


def group_alike(
    prepared: _Features,
    labels: np.ndarray,
    clusters: Sequence[int],
    *,
    min_cover: float = 0.6,
    distinct: float = 0.9,
    max_depth: int = 3,
    max_rows: int = 100_000,
    seed: int = 0,
    n_jobs: int = 1,
    **kwargs: Any,
) -> list[tuple[int, ...]]:
    """Groups of ``clusters`` that the engine's features cannot tell apart.

    Each cluster first gets rules against the traffic outside ``clusters`` (the other
    clusters are ignored, not counter-examples). Cluster ``b`` lies inside ``a`` when
    ``a``'s rules match at least ``min_cover`` of ``b``'s members. Two clusters are alike
    when each lies inside the other (siblings described alike), or when one lies inside the
    other and either has no precise description of its own (its own rules reach less than
    ``distinct`` precision: a sub-cluster whose narrower trait, one e-mail domain, is not
    enough to set it apart, or a broad one whose rules take in its siblings). Two clusters
    that each have a precise description stay apart even when one lies inside the other's
    broad rule (bots from the few IPs that a flash ring's "many orders per IP" also matches):
    two rings are not merged. Alikeness is chained (single linkage): a ring split into
    several clusters becomes one group. ``min_cover`` is above one half, so that a rule
    catching half of another cluster does not chain. Descriptions are shallow
    (``max_depth``): alikeness is about the main traits. The clusters' descriptions are
    learned ``n_jobs`` at a time (`extract_all_rules`), each against the same sample of at
    most ``max_rows`` rows outside ``clusters``, drawn with ``seed``; ``kwargs`` go to
    `extract_rules`. The descriptions are scored, and cover counted, on the members and that
    sample, each of its rows standing for its share of the rows outside: exact counts over
    every row were a pass over all rows per cluster, clusters x rows (benchmarks/README.md).
    With no more than ``max_rows`` rows outside, the sample is all of them.
    """
    if not clusters:
        return []
    k = len(clusters)
    ids = np.asarray(clusters)
    order = np.argsort(ids)
    at = np.searchsorted(ids[order], labels).clip(max=k - 1)
    code = np.where(ids[order][at] == labels, order[at], -1)  # row's index in clusters, or -1
    # every cluster is learned against the same traffic: a sample of the rows outside them all
    picked = _Sample.pick(np.flatnonzero(code < 0), max_rows, seed)
    outside_weight = np.count_nonzero(code < 0) / max(len(picked), 1)
    rows = np.r_[picked, np.flatnonzero(code >= 0)]
    every_row, every_code = prepared, code
    prepared, code = prepared.take(rows), code[rows]
    outside = code < 0
    sample = _Sample(prepared, np.arange(len(picked)))

    def describe(i: int) -> list[Rule]:
        member = code == i
        return _learn_rules(
            prepared,
            member,
            outside | member,
            (int(clusters[i]),),
            sample,
            max_depth=max_depth,
            max_rows=max_rows,
            seed=seed,
            outside_weight=outside_weight,
            **kwargs,
        )

    described = _map_threads(describe, range(k), n_jobs)
    alone = dict(zip(clusters, described, strict=True))
    # cover[a, b]: members of clusters[b] that clusters[a]'s rules match; one pass over the
    # members and the sample per cluster, not one per pair, and no row mask kept per cluster
    size = np.bincount(code[code >= 0], minlength=k)
    cover = np.zeros((k, k), dtype=np.int64)
    for i, c in enumerate(clusters):
        hit = _ConditionMasks(prepared).any_rule(alone[c])
        cover[i] = np.bincount(code[hit & (code >= 0)], minlength=k)
    position = {c: i for i, c in enumerate(clusters)}
    every_outside = every_code < 0
    # every member's row, cluster by cluster: members_of[starts[i]:starts[i + 1]] are i's
    members_of = np.flatnonzero(~every_outside)
    members_of = members_of[np.argsort(every_code[members_of], kind="stable")]
    starts = np.searchsorted(every_code[members_of], np.arange(k + 1))

    @functools.cache
    def own(c: int) -> float:
        """Precision of ``c``'s description over every row outside ``clusters``.

        Exact, as it decides a merge: estimated from the sample, one hit among its rows
        moves a small cluster's precision across ``distinct`` (benchmarks/README.md). Asked
        only of clusters that lie inside another or hold one. Its members' hits are looked
        up, and the rows outside are a mask made once: comparing every row's cluster code
        twice a call read 48 MB at 3M rows.
        """
        hit = _ConditionMasks(every_row).any_rule(alone[c])
        i = position[c]
        mine = np.count_nonzero(hit[members_of[starts[i] : starts[i + 1]]])
        return mine / max(mine + np.count_nonzero(hit & every_outside), 1)

    parent = {c: c for c in clusters}

    def root(c: int) -> int:
        while parent[c] != c:
            c = parent[c]
        return c

    def inside(b: int, a: int) -> bool:
        i, j = position[a], position[b]
        return float(cover[i, j] / max(size[j], 1)) >= min_cover

    for i, a in enumerate(clusters):
        for b in clusters[i + 1 :]:
            ab, ba = inside(b, a), inside(a, b)
            if (ab and ba) or ((ab or ba) and min(own(a), own(b)) < distinct):
                parent[root(b)] = root(a)
    groups: dict[int, list[int]] = {}
    for c in clusters:
        groups.setdefault(root(c), []).append(c)
    return [tuple(sorted(g)) for g in groups.values()]


def extract_all_rules(
    features: pd.DataFrame,
    labels: np.ndarray | pd.Series,
    clusters: Iterable[int],
    *,
    group: bool = True,
    min_cover: float = 0.6,
    max_depth: int = 4,
    n_jobs: int = -1,
    **kwargs: Any,
) -> dict[int, list[Rule]]:
    """Rules for each of ``clusters`` (typically the risky ones), keyed by cluster id.

    With ``group``, clusters the features cannot tell apart (`group_alike`) share one set of
    rules, learned for the group against all other traffic, other groups included: a rule
    "this cluster vs the rest" cannot separate siblings of one ring, and would be either
    imprecise or missing. Without it each cluster is learned alone. The group's rules may
    take one condition more than the shallow descriptions that grouped it (``max_depth``):
    a group has to be told apart from look-alike rings too (young accounts of a flash ring
    from those of a reshipping ring, by the length of the session).

    Each cluster's or group's rules depend on nothing learned for another, so they are learned
    ``n_jobs`` at a time (-1: one per core) in threads sharing the prepared features: the tree
    fits, most of the time, run without the GIL, and the results are the same as one at a time.
    """
    prepared = _Features(features, kwargs.pop("max_categories", 20))
    labels = np.asarray(labels)
    ids = [int(c) for c in clusters]
    groups = (
        group_alike(prepared, labels, ids, min_cover=min_cover, n_jobs=n_jobs, **kwargs)
        if group
        else [(c,) for c in ids]
    )
    learned = _map_threads(
        lambda g: extract_rules(prepared, labels, g, max_depth=max_depth, **kwargs),
        groups,
        n_jobs,
    )
    out: dict[int, list[Rule]] = {}
    for g, rules in zip(groups, learned, strict=True):
        for c in g:
            out[c] = rules
    return {c: out[c] for c in ids}


def _map_threads(fn: Callable[[_T], _R], items: Sequence[_T], n_jobs: int) -> list[_R]:
    """``[fn(x) for x in items]``, ``n_jobs`` at a time (-1: one per core), in order."""
    workers = (os.cpu_count() or 1) if n_jobs < 1 else n_jobs
    if workers == 1 or len(items) < 2:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(min(workers, len(items))) as pool:
        return list(pool.map(fn, items))
