"""Patronage: service marketing and loyalty for cross-border e-commerce stores."""

__version__ = "0.1.0"
