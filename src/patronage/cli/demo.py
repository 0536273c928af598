"""`patronage demo`: build the deterministic demo store and serve it."""

from __future__ import annotations


def demo() -> None:
    """Build the demo store and serve it."""
    raise NotImplementedError
