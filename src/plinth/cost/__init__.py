"""Cost: resource accounting, price table, budgets and capacity planning.

Example:
    >>> from plinth.cost import capacity
    >>> # plan = capacity("loadtest.json", target_qps=500, slo_p99_ms=50); plan.replicas
"""

from __future__ import annotations

from plinth.cost.capacity import CapacityPlan, LoadStep, LoadTestResult, capacity

__all__ = ["CapacityPlan", "LoadStep", "LoadTestResult", "capacity"]
