"""Beacon: warehouse-native marketing automation on Airflow 3 + dbt."""

__version__ = "0.1.0"
