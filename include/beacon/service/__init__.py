"""Beacon's own HTTP endpoints (`beacon serve`): collection, webhooks, unsubscribe and preferences, offers.

The request path never writes the DuckDB warehouse: see beacon.service.app.
"""
