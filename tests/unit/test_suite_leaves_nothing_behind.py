"""A test session leaves nothing behind in the temporary folder or in the user's home."""

from __future__ import annotations

import getpass
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_a_test_session_leaves_nothing_in_tmp_or_home(tmp_path: Path) -> None:
    home, tmp = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    tmp.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "SHARELIFT"))}
    env.update(HOME=str(home), TMPDIR=str(tmp))
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
        + [str(REPO / "tests" / "unit" / "leftovers_session.py")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert sorted(p.name for p in home.iterdir()) == []
    # pytest's own folder of tmp_path folders (it keeps the last three sessions') may stay.
    assert sorted(p.name for p in tmp.iterdir()) in ([], [f"pytest-of-{getpass.getuser()}"])
