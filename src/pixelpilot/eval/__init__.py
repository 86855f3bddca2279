"""Evaluation: action matching rules, offline step-level evaluation with dataset adapters,
online task-suite evaluation, reports and comparisons (see ``docs/evaluation.md``).

The matching rules are imported here (they are light and shared with the GRPO rewards); the
rest is imported from its module: ``pixelpilot.eval.offline``, ``.online``, ``.compare``.
"""

from pixelpilot.eval.matching import MatchResult, MatchRules, match_action, match_step

__all__ = ["MatchResult", "MatchRules", "match_action", "match_step"]
