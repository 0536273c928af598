"""Domain-free helpers: money, clock, time parsing, phones, secrets."""
