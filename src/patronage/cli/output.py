"""Shared console output: JSON for machines, Rich for people."""

from __future__ import annotations

import json
import sys
from datetime import date, datetime
from decimal import Decimal
from typing import Any, NoReturn

import typer
from rich.console import Console

console = Console()
errors = Console(stderr=True)


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    raise TypeError(f"cannot serialise {type(value).__name__}")


def print_json(data: Any) -> None:
    """Print `data` as JSON on standard output."""
    sys.stdout.write(json.dumps(data, default=_default, indent=2, ensure_ascii=False) + "\n")


def fail(message: str, code: int = 1) -> NoReturn:
    """Print an error and exit with `code`."""
    errors.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)
