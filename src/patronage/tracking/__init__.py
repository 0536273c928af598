"""Behavioural events and the Segment-compatible tracking intake."""
