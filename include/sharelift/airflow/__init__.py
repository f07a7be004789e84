"""The Airflow side of sharelift: connection types, hooks, and the task bodies DAGs call.

This sub-package is the only part of ``sharelift`` that imports Airflow, and it does so
lazily inside functions where it can, so ``sharelift.airflow.connections`` stays testable
without a scheduler. Airflow discovers the connection types through the provider entry
point declared in ``pyproject.toml`` (``sharelift.airflow.provider``); plugins cannot
register connection types in Airflow 3.
"""
