"""Stores (tenants), their API keys and settings."""
