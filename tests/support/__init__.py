"""Test support shared by the test packages: small warehouses (activation_world, ml_world) and a fake CRM API.

Importable as `support.<module>`: pytest puts tests/ on the path (pyproject `pythonpath`)."""
