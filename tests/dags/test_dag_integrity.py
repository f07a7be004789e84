"""The DAG folder loads without errors and the migration DAG has the documented shape (docs/concepts.md)."""

from __future__ import annotations


def test_every_dag_file_imports_without_errors(dagbag) -> None:  # type: ignore[no-untyped-def]
    assert dagbag.import_errors == {}


def test_the_migration_dag_runs_plan_copy_close(dagbag) -> None:  # type: ignore[no-untyped-def]
    """Three tasks, one task start each: plan (check, scan, partition), copy (mapped),
    close (verify, report, queue the next run, finish)."""
    dag = dagbag.get_dag("sharelift_migrate")
    assert dag is not None
    order = [t.task_id for t in dag.topological_sort()]
    assert order == ["plan", "copy", "close"]
    assert dag.get_task("close").trigger_rule == "all_done"


def test_copy_is_mapped_in_a_pool_with_at_most_20_active(dagbag) -> None:  # type: ignore[no-untyped-def]
    copy = dagbag.get_dag("sharelift_migrate").get_task("copy")
    assert copy.pool == "sharelift_copy"
    assert copy.max_active_tis_per_dagrun == 20
