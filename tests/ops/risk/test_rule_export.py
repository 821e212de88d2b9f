"""Rules exported as SQL and JSON Logic match Shoal's own evaluation row for row."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pytest
from json_logic import jsonLogic

from catalog.synthetic.shop import VOCABULARY, shop_tables
from ops.features import session_stats
from ops.risk import Condition, Rule, extract_all_rules
from ops.risk._rule_export import (
    RULE_SOURCE_SQL,
    engine_forms,
    quote_identifier,
    rule_to_json_logic,
    rule_to_sql,
    sql_literal,
)

ODD_COLUMN = 'card "kind"'


def _behaviour(events: pd.DataFrame) -> pd.DataFrame:
    """The run's ``behaviour`` table: session statistics per transaction."""
    events = events.sort_values(["txn_id", "ts"], kind="stable")
    index = {name: i + 2 for i, name in enumerate(VOCABULARY)}
    tokens, dwell, ids = [], [], []
    for txn_id, session in events.groupby("txn_id", sort=True):
        ms = session["ts"].astype("int64").to_numpy() // 1_000_000
        tokens.append(session["event"].map(index).fillna(1).to_numpy(dtype=np.int64))
        dwell.append(np.diff(ms, prepend=ms[0]) / 1000.0)
        ids.append(txn_id)
    return session_stats(tokens, dwell, VOCABULARY).to_pandas().assign(txn_id=ids)


@pytest.fixture(scope="module")
def window(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame, list[Rule]]:
    """A small demo window on disk, as a run writes it, with missing values planted."""
    tables = shop_tables(2_000, seed=3)
    txns = tables.transactions.to_pandas()
    rng = np.random.default_rng(0)
    txns[ODD_COLUMN] = rng.choice(["it's", "plain", "<b>x</b>"], len(txns))
    gaps = rng.random((4, len(txns))) < 0.05
    txns["account_age_days"] = txns["account_age_days"].mask(gaps[0])
    txns["country_mismatch"] = txns["country_mismatch"].astype(object).mask(gaps[1], None)
    txns["card_country"] = txns["card_country"].mask(gaps[2], None)
    behaviour = _behaviour(tables.events.to_pandas())
    behaviour["median_dwell"] = behaviour["median_dwell"].mask(gaps[3][: len(behaviour)])
    folder = tmp_path_factory.mktemp("run")
    txns.to_parquet(folder / "transactions.parquet")
    behaviour.to_parquet(folder / "behaviour.parquet")
    view = (
        pd.read_parquet(folder / "transactions.parquet")
        .join(pd.read_parquet(folder / "behaviour.parquet").set_index("txn_id"), on="txn_id")
        .reset_index(drop=True)
    )
    # rules as a run learns them (rings as the clusters), and every operator by hand
    pattern = tables.truth.to_pandas().set_index("txn_id").loc[view["txn_id"], "pattern"]
    codes, names = pd.factorize(pattern)
    rings = [i for i, name in enumerate(names) if name not in ("normal", "scattered_fraud")]
    columns = ["amount", "account_age_days", "country_mismatch", "card_country",
               "email_domain", "is_new_shipping_address", "txn_count_24h",
               "median_dwell", "dwell_cv", "duration", "n_events"]  # fmt: skip
    learned = extract_all_rules(view[columns], codes, rings, max_depth=4)
    rules = list(dict.fromkeys(r for rs in learned.values() for r in rs))
    by_hand = [
        (Condition("country_mismatch", "!=", True),),
        (Condition("country_mismatch", "==", False), Condition("median_dwell", ">", 1.5)),
        (Condition("card_country", "!=", "US"), Condition("account_age_days", "<=", 30.0)),
        (Condition(ODD_COLUMN, "==", "it's"),),
        (Condition(ODD_COLUMN, "!=", "<b>x</b>"), Condition("amount", ">", 100.0)),
    ]
    rules += [Rule(cluster=-1, conditions=conditions) for conditions in by_hand]
    return folder, view, rules


def _records(view: pd.DataFrame) -> list[dict[str, Any]]:
    """One JSON record per transaction: a missing value is null, as JSON has no NaN."""

    def plain(v: Any) -> Any:
        if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
            return None
        return v.item() if isinstance(v, np.generic) else v

    return [{k: plain(v) for k, v in row.items()} for row in view.to_dict("records")]


def test_sql_and_json_logic_match_shoal_row_for_row(
    window: tuple[Path, pd.DataFrame, list[Rule]],
) -> None:
    folder, view, rules = window
    assert len(rules) >= 8 and {c.op for r in rules for c in r.conditions} == {
        "<=",
        ">",
        "==",
        "!=",
    }
    con = duckdb.connect()
    for table in ("transactions", "behaviour"):
        source = sql_literal(str(folder / f"{table}.parquet"))
        con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet({source})")
    records = _records(view)
    for rule in rules:
        shoal = set(view.loc[rule.mask(view), "txn_id"])
        sql = f"SELECT txn_id FROM {RULE_SOURCE_SQL} WHERE {rule_to_sql(rule)}"
        assert {row[0] for row in con.execute(sql).fetchall()} == shoal, rule.describe()
        logic = rule_to_json_logic(rule)
        matched = {r["txn_id"] for r in records if jsonLogic(logic, r)}
        assert matched == shoal, rule.describe()
        # never NULL: the negation is the exact complement, as ~mask is
        negated = f"SELECT count(*) FROM {RULE_SOURCE_SQL} WHERE NOT ({rule_to_sql(rule)})"
        assert con.execute(negated).fetchone()[0] == len(view) - len(shoal)


def test_missing_values_match_no_condition() -> None:
    rows = pd.DataFrame(
        {
            "txn_id": ["nan", "none", "known"],
            "amount": [np.nan, None, 10.0],
            "flag": [None, None, False],
            "country": [None, None, "FR"],
        }
    )
    rules = [
        Rule(0, (Condition("amount", "<=", 50.0),)),
        Rule(0, (Condition("amount", ">", 5.0),)),
        Rule(0, (Condition("flag", "!=", True),)),
        Rule(0, (Condition("flag", "==", False),)),
        Rule(0, (Condition("country", "!=", "US"),)),
    ]
    con = duckdb.connect()
    con.register("transactions", rows)
    for rule in rules:
        assert rule.mask(rows).tolist() == [False, False, True]
        sql = f"SELECT txn_id FROM transactions WHERE {rule_to_sql(rule)}"
        assert [r[0] for r in con.execute(sql).fetchall()] == ["known"]
        logic = rule_to_json_logic(rule)
        assert [jsonLogic(logic, r) for r in _records(rows)] == [False, False, True]
        assert not jsonLogic(logic, {})  # an absent key is missing too


def test_identifiers_and_literals_are_quoted() -> None:
    assert quote_identifier('a "b"') == '"a ""b"""'
    assert sql_literal("it's") == "'it''s'"
    assert sql_literal(np.float64(0.1)) == "0.1" and sql_literal(np.bool_(True)) == "TRUE"
    with pytest.raises(ValueError, match="finite"):
        sql_literal(float("inf"))
    dotted = Rule(0, (Condition("device.id", "==", "x"),))
    assert rule_to_json_logic(dotted) is None
    assert engine_forms(dotted)["sql"] == """("device.id" IS NOT NULL AND "device.id" = 'x')"""
