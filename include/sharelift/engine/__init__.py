"""The migration engine: check -> scan -> partition -> copy -> verify -> report, without Airflow.

Each step is one function of ``steps`` over a small run context, leaving its output in a
shared work folder and the state database, so the DAG tasks are thin wrappers around
those functions, ``runner`` runs the same functions in a loop, and every step can be
tested (and re-run) on its own.
"""
