"""Workloads built on the engine: LLM serving simulation (and, beside it, the K-Perf matrix)."""
from .serving import (RequestRecord, Scenario, ServingConfig, ServingResult, StepLog,
                      simulate_serving)

__all__ = ["RequestRecord", "Scenario", "ServingConfig", "ServingResult", "StepLog",
           "simulate_serving"]
