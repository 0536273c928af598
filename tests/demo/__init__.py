"""Tests of the deterministic demo store."""
