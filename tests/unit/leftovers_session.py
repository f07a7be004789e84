"""A small test session of its own, run by ``test_suite_leaves_nothing_behind`` only.

Not a ``test_*.py`` file, so the suite does not collect it; it sits under ``tests/`` so that
``tests/conftest.py`` sets the session up as it does for every run.
"""

from __future__ import annotations

import os
import tempfile


def test_airflow_reads_the_sessions_throw_away_home() -> None:
    from airflow.configuration import conf

    home = os.environ["AIRFLOW_HOME"]
    assert home.startswith(tempfile.gettempdir())
    assert conf.get("logging", "base_log_folder").startswith(home)
