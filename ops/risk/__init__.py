"""Risk: which clusters are risky, the rules that describe them, and what to act on.

Risk assessment by labels or by coordination, rule learning and the rules' engine
contract, narratives, casework (missed fraud, review queue), cluster lineage across
windows, and scoring new transactions against a champion.
"""

from ops.risk._branches import BranchConfig, TreeNodes, risky_branches
from ops.risk._casework import missed_fraud, review_list
from ops.risk._cluster_lineage import STATUSES, ClusterSet, LineageConfig, cluster_lineage
from ops.risk._coordination import CoordinationConfig
from ops.risk._flags import (
    FLAG_REASONS,
    MembershipCalibration,
    MembershipConfig,
    calibrate_membership,
    flag_transactions,
    membership_candidates,
    risky_membership,
    rule_hits,
)
from ops.risk._narrative import BEHAVIOUR_COLUMNS, describe_behaviour, narrate
from ops.risk._neighbours import NeighbourConfig, NeighbourVote, neighbour_vote
from ops.risk._risk import LabelConfig, RiskConfig, assess_risk
from ops.risk._rule_export import RULE_SOURCE_SQL, engine_forms, rule_to_json_logic, rule_to_sql
from ops.risk._rule_learner import extract_all_rules
from ops.risk._rules import Condition, Rule, rules_from_json, rules_to_json
from ops.risk._scoring import attach_risk, translate_tokens
from ops.risk._sibling_risk import SiblingConfig, cluster_parents, pool_siblings

__all__ = [
    "BEHAVIOUR_COLUMNS",
    "FLAG_REASONS",
    "RULE_SOURCE_SQL",
    "STATUSES",
    "BranchConfig",
    "ClusterSet",
    "Condition",
    "CoordinationConfig",
    "LabelConfig",
    "LineageConfig",
    "MembershipCalibration",
    "MembershipConfig",
    "NeighbourConfig",
    "NeighbourVote",
    "RiskConfig",
    "Rule",
    "SiblingConfig",
    "TreeNodes",
    "assess_risk",
    "attach_risk",
    "calibrate_membership",
    "cluster_lineage",
    "cluster_parents",
    "describe_behaviour",
    "engine_forms",
    "extract_all_rules",
    "flag_transactions",
    "membership_candidates",
    "missed_fraud",
    "narrate",
    "neighbour_vote",
    "pool_siblings",
    "review_list",
    "risky_branches",
    "risky_membership",
    "rule_hits",
    "rule_to_json_logic",
    "rule_to_sql",
    "rules_from_json",
    "rules_to_json",
    "translate_tokens",
]
