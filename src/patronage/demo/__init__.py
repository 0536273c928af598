"""The deterministic demo store: a realistic cross-border seller in twelve markets."""

from patronage.demo.generator import (
    DEFAULT_AS_OF,
    DEFAULT_CUSTOMERS,
    DEFAULT_SEED,
    DemoBatch,
    DemoSimulation,
    DemoSummary,
    build_demo_store,
    remove_demo_stores,
    simulate,
)

__all__ = [
    "DEFAULT_AS_OF",
    "DEFAULT_CUSTOMERS",
    "DEFAULT_SEED",
    "DemoBatch",
    "DemoSimulation",
    "DemoSummary",
    "build_demo_store",
    "remove_demo_stores",
    "simulate",
]
