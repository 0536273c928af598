"""Importers (Shopify CSV, generic CSV) and inbound webhooks."""
