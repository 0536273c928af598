"""`patronage import …`: Shopify customer and order CSV exports, generic CSV."""

from __future__ import annotations

import typer

app = typer.Typer(help="Import customers and orders from files.", no_args_is_help=True)
