"""The migration engine: scan -> partition -> copy -> verify -> report, without Airflow.

Each step is a plain function over small descriptors and files on a shared work folder,
so the DAG tasks are thin wrappers and every step can be tested (and re-run) on its own.
"""
