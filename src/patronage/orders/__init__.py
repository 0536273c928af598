"""Orders, their lines, status timeline, refunds and exchange rates."""
