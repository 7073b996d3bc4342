"""Flow-run orchestration: named rules that decide every proposed state transition. Pure, no database.

The API layer calls::

    decision = orchestrate(TransitionContext(current=..., proposed=..., run=..., ...), FLOW_RUN_POLICY)

and, when ``decision.persist``, writes ``decision.state`` and ``decision.run`` in the same transaction.
See docs/orchestration.md.
"""

from __future__ import annotations

from headrace.server.orchestration.core import (
    ANY_STATE,
    ConcurrencySlots,
    Decision,
    DecisionStatus,
    InMemoryConcurrencySlots,
    Rule,
    RunFacts,
    TransitionContext,
    holds_concurrency_slot,
    next_run_facts,
    orchestrate,
)
from headrace.server.orchestration.rules import (
    ALLOWED_TRANSITIONS,
    FLOW_RUN_POLICY,
    HandleCancellation,
    HandlePausing,
    HandleResuming,
    HonourConcurrencyLimits,
    KeepTerminalStatesTerminal,
    OneClaimerWinsPending,
    PreventDuplicateTransitions,
    PreventIllegalTransitions,
    RespectScheduledTime,
    RetryFailedRuns,
)

__all__ = [
    "ALLOWED_TRANSITIONS",
    "ANY_STATE",
    "FLOW_RUN_POLICY",
    "ConcurrencySlots",
    "Decision",
    "DecisionStatus",
    "HandleCancellation",
    "HandlePausing",
    "HandleResuming",
    "HonourConcurrencyLimits",
    "InMemoryConcurrencySlots",
    "KeepTerminalStatesTerminal",
    "OneClaimerWinsPending",
    "PreventDuplicateTransitions",
    "PreventIllegalTransitions",
    "RespectScheduledTime",
    "RetryFailedRuns",
    "Rule",
    "RunFacts",
    "TransitionContext",
    "holds_concurrency_slot",
    "next_run_facts",
    "orchestrate",
]
