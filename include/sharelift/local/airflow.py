"""A real Apache Airflow 3.3 on 127.0.0.1: what the demo runs, and the end-to-end tests and benchmark.

``AirflowServer(home, dags_folder).start()`` runs ``airflow db migrate`` and then the four
components (api-server, scheduler, dag-processor, triggerer) as separate processes, with
``AIRFLOW_HOME`` (``home/airflow``), a SQLite metadata database, the component logs
(``home/logs/*.log``) and the task logs all under ``home``, and every port picked free on
127.0.0.1. ``start()`` returns once ``GET /api/v2/monitor/health`` says the metadatabase,
scheduler, dag-processor and triggerer are healthy; ``stop()`` (or the context manager) ends
every process it started. A small REST client (bearer token from ``POST /auth/token``) drives
DAGs, runs, pools, connections and variables; ``.env`` is the environment of the components,
so a test can run ``airflow`` CLI commands against the same home::

    with AirflowServer(tmp / "af", Path("dags")) as af:
        af.wait_for_dag("sharelift_migrate")
        af.create_pool("sharelift_copy", 20, "copy subtasks")
        af.unpause("sharelift_migrate")
        run_id = af.trigger("sharelift_migrate", {"job_name": "demo"})
        assert af.wait_for_run("sharelift_migrate", run_id, timeout=300) == "success"

Choices (made on the 2-core test machine with Airflow 3.3.2; the figures behind them are in
``bench/results/findings.md``):

* **Separate components, not ``airflow standalone``.** ``standalone`` is one more ~200 MB
  Python parent that only pipes the children's output, interleaved, into one stream; it finds
  ``airflow`` on ``PATH``; it stops its children with SIGTERM; and it does not configure the
  execution API URL (below). Separate processes give one log file per component, so a failure
  names the component that died and shows *its* log tail, and the four start in parallel
  after ``db migrate``, healthy several times sooner than ``standalone``. Each
  component runs in its own process group (``start_new_session``), so a signal to the group
  reaches the component and the workers it forked.
* **Task processes escape those groups.** The task SDK supervisor puts every task process in
  a new process group of its own. ``stop()`` therefore snapshots the whole process tree with
  psutil before signalling, and finishes with a sweep for any process whose environment
  carries this ``AIRFLOW_HOME``.
* **Stop order**: SIGINT to the scheduler, dag-processor and triggerer groups first (the
  scheduler lets running tasks end, and they need the api-server's execution API to report
  that), then SIGINT to the api-server, then SIGTERM, then SIGKILL to whatever is left of
  the tree. Two Airflow shutdown stalls are cut short (``_stuck_children``): the triggerer
  waiting 10 s on a trigger runner that has already exited, and ``LocalExecutor.end()``
  joining, without a timeout, an idle worker that never gets its ``None``.
  ``stop_report`` says how each component ended.
* **The execution API URL must be set.** Workers reach the api-server at
  ``[core] execution_api_server_url``, which defaults to ``http://localhost:8080/execution/``
  whatever ``[api] port`` says; ``[api] base_url`` is set to ``http://127.0.0.1:PORT/`` and the
  execution URL to ``.../execution/``.
* **Shared secrets.** Components started at the same time on a fresh home could each generate
  their own ``airflow.cfg`` secrets; the JWT secret (the api-server must accept the tokens the
  scheduler issues to tasks), the API secret key and the Fernet key are generated once here.
* **SQLite with LocalExecutor** is accepted by Airflow 3.3 (there is no check against it;
  ``standalone`` uses it). The database is switched to WAL journal mode after the migration,
  so readers (UI, execution API) and the one writer do not block each other; 20 concurrent
  tasks ran without a "database is locked".
* **Parallelism** (default 24): the LocalExecutor forks ``parallelism`` workers when the
  scheduler starts. They are copy-on-write forks, so an idle worker costs little (PSS, not
  summed RSS, is the honest total: RSS counts shared pages once per process); the cost is
  the running tasks. 24 = the 20 pool slots plus room for the scan/partition/report tasks
  of a concurrent run and for workers still finishing (below).
* **Scheduling latency**: ``[scheduler] scheduler_idle_sleep_time`` 0.25 (1 s by default):
  every hand-over between tasks waits up to one idle sleep, so a short run ends about a
  second sooner, for a little more CPU while idle. Job heartbeat intervals do not affect
  scheduling.
* **Worker lingering**: a task's supervisor often notices its task process's exit only when
  its ``select()`` times out after ``[workers] min_heartbeat_interval`` (5 s by default); the
  executor worker stays busy that long after the task ended (the pool slot is freed at once).
  Lowered to 2 s (a heartbeat every 2 s per running task).
* **Auth**: the simple auth manager with the users of ``[core] simple_auth_manager_users``
  (``admin:admin``) and a passwords file written before start (``{"admin": "admin"}``), so
  the password is known instead of generated and printed.
* DAGs are **paused at creation** (Airflow's default, kept so a scheduled DAG never starts on
  its own in a test); ``unpause()`` before ``trigger()``. ``wait_for_run`` says so when a run
  stays queued on a paused DAG.
* The caller's ``AIRFLOW*`` environment variables are not passed on (``extra_env`` is the way
  in), so a developer's own Airflow settings cannot leak into the test bed.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests

from sharelift.local import LocalServerError
from sharelift.local.ports import LOOPBACK, free_port, log_tail

COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
TERMINAL_RUN_STATES = ("success", "failed")
_HEALTH_PATH = "/api/v2/monitor/health"
# component -> its entry in the health answer (the api-server answers, so it is the database)
_HEALTH_KEYS = {
    "api-server": "metadatabase",
    "scheduler": "scheduler",
    "dag-processor": "dag_processor",
    "triggerer": "triggerer",
}


class AirflowApiError(LocalServerError):
    """The Airflow REST API answered with an error status."""

    def __init__(self, method: str, path: str, status_code: int, body: str) -> None:
        super().__init__(f"{method} {path} -> HTTP {status_code}: {body[:2000]}")
        self.status_code = status_code
        self.body = body


def _quote(part: str) -> str:
    return quote(part, safe="")


def parse_time(value: str | datetime | None) -> datetime | None:
    """An ISO-8601 time from the API (``...Z`` or ``+00:00``) as an aware datetime."""
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


class AirflowServer:
    """Airflow's api-server, scheduler, dag-processor and triggerer on 127.0.0.1 (see module doc)."""

    def __init__(
        self,
        home: Path,
        dags_folder: Path,
        plugins_folder: Path | None = None,
        parallelism: int = 24,
        extra_env: dict[str, str] | None = None,
        username: str = "admin",
        password: str = "admin",
    ) -> None:
        self.home = Path(home).absolute()
        self.airflow_home = self.home / "airflow"
        self.log_dir = self.home / "logs"
        self.dags_folder = Path(dags_folder).absolute()
        self.plugins_folder = (
            Path(plugins_folder).absolute()
            if plugins_folder is not None
            else self.airflow_home / "plugins"
        )
        self.parallelism = parallelism
        self.extra_env = dict(extra_env or {})
        self.username = username
        self.password = password
        self.port = 0
        self.base_url = ""
        self.env: dict[str, str] = {}
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.started_at: float | None = None
        self.healthy_after: float | None = None  # seconds from start() to healthy
        self._session: requests.Session | None = None
        self._token: str | None = None
        self._running = False
        self._stop_t0 = 0.0
        self.stop_report: dict[str, str] = {}

    @classmethod
    def client(cls, base_url: str, username: str, password: str) -> AirflowServer:
        """The REST client alone, for an Airflow started by something else (the native
        docker-compose runner of ``tests/deployment``): nothing to start, ``stop()`` does
        nothing, and failures carry no component logs."""
        server = cls(Path(".airflow-client"), Path("."), username=username, password=password)
        server.base_url = base_url.rstrip("/")
        return server

    # ------------------------------------------------------------------ life cycle

    def __enter__(self) -> AirflowServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log_path(self, component: str) -> Path:
        return self.log_dir / f"{component}.log"

    def _build_env(self) -> dict[str, str]:
        self.port = free_port()
        self.base_url = f"http://{LOOPBACK}:{self.port}"
        # The caller's own Airflow settings (AIRFLOW_HOME, AIRFLOW__*, AIRFLOW_CONN_*) must not
        # leak into the test bed: extra_env is the one way in.
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        bin_dir = str(Path(sys.executable).parent)
        env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
        db_path = self.airflow_home / "airflow.db"
        env.update(
            {
                "AIRFLOW_HOME": str(self.airflow_home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
                "AIRFLOW__CORE__PLUGINS_FOLDER": str(self.plugins_folder),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": str(self.parallelism),
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
                "AIRFLOW__CORE__FERNET_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{self.username}:admin",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(
                    self.airflow_home / "simple_auth_manager_passwords.json"
                ),
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{db_path}",
                "AIRFLOW__API__HOST": LOOPBACK,
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__BASE_URL": f"{self.base_url}/",
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__API__WORKER_TIMEOUT": "10",
                "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
                "AIRFLOW__API__EXPOSE_CONFIG": "True",
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__LOGGING__COLORED_CONSOLE_LOG": "False",
                # New and changed DAG files show up within seconds, not minutes.
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "10",
                "AIRFLOW__DAG_PROCESSOR__BUNDLE_REFRESH_CHECK_INTERVAL": "2",
                "AIRFLOW__DAG_PROCESSOR__PRINT_STATS_INTERVAL": "300",
                # The scheduler loop sleeps this long when idle: 1 s by default, which adds
                # up to 1 s to every hand-over between tasks. Job heartbeats do not speed
                # anything up.
                "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.25",
                # A task's supervisor often notices its task process's exit only when its
                # select() times out, after this interval (5 s by default), and the executor
                # worker stays busy until then. 2 s: shorter lingering, 0.5 heartbeat/s/task.
                "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "2",
            }
        )
        env.update(self.extra_env)
        return env

    def _prepare_home(self) -> None:
        for folder in (self.airflow_home, self.log_dir, self.plugins_folder):
            folder.mkdir(parents=True, exist_ok=True)
        passwords = Path(self.env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
        passwords.write_text(json.dumps({self.username: self.password}) + "\n")
        passwords.chmod(0o600)

    def _airflow_cmd(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "airflow", *args]

    def _migrate(self, timeout: float) -> None:
        log = self.log_path("db-migrate")
        with open(log, "wb") as out:
            try:
                proc = subprocess.run(
                    self._airflow_cmd("db", "migrate"),
                    env=self.env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    timeout=timeout,
                )
            except subprocess.TimeoutExpired:
                raise LocalServerError(
                    f"`airflow db migrate` did not finish in {timeout:.0f} s:\n{log_tail(str(log))}"
                ) from None
        if proc.returncode != 0:
            raise LocalServerError(
                f"`airflow db migrate` failed (exit {proc.returncode}):\n{log_tail(str(log))}"
            )
        # WAL (persistent in the file): readers (UI, execution API) no longer block the one
        # SQLite writer, nor it them.
        conn = self.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
        if conn.startswith("sqlite:///"):
            with contextlib.closing(sqlite3.connect(conn.removeprefix("sqlite:///"))) as con:
                con.execute("PRAGMA journal_mode=WAL")

    def start(self, timeout: float = 180) -> AirflowServer:
        if self._running:
            raise LocalServerError("AirflowServer already started")
        self.started_at = time.monotonic()
        self._running = True
        deadline = self.started_at + timeout
        try:
            self.env = self._build_env()
            self._prepare_home()
            self._migrate(timeout=max(5.0, deadline - time.monotonic()))
            for component in COMPONENTS:
                out = open(self.log_path(component), "wb")  # noqa: SIM115 - closed below
                try:
                    self.processes[component] = subprocess.Popen(
                        self._airflow_cmd(component),
                        env=self.env,
                        cwd=str(self.home),
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                        start_new_session=True,
                    )
                finally:
                    out.close()
            self._wait_healthy(deadline)
        except BaseException:
            self.stop()
            raise
        self.healthy_after = time.monotonic() - self.started_at
        return self

    def _logs_of(self, components: Iterable[str]) -> str:
        return "\n".join(
            f"--- {c} ({self.log_path(c)}):\n{log_tail(str(self.log_path(c)), 30)}"
            for c in components
        )

    @staticmethod
    def _healthy(answer: Any, key: str) -> bool:
        return isinstance(answer, dict) and (answer.get(key) or {}).get("status") == "healthy"

    def _wait_healthy(self, deadline: float) -> None:
        last: Any = None
        while time.monotonic() < deadline:
            for component, proc in self.processes.items():
                if proc.poll() is not None:
                    raise LocalServerError(
                        f"airflow {component} exited with {proc.returncode} during start-up:\n"
                        + self._logs_of([component])
                    )
            try:
                resp = requests.get(self.base_url + _HEALTH_PATH, timeout=5)
                if resp.status_code == 200:
                    last = resp.json()
                    if all(self._healthy(last, key) for key in _HEALTH_KEYS.values()):
                        return
                else:
                    last = f"HTTP {resp.status_code}: {resp.text[:300]}"
            except requests.RequestException as exc:
                last = repr(exc)
            time.sleep(0.5)
        unhealthy = [c for c, key in _HEALTH_KEYS.items() if not self._healthy(last, key)]
        raise LocalServerError(
            f"Airflow was not healthy in time; last health answer: {last}\n"
            + self._logs_of(unhealthy or COMPONENTS)
        )

    # ------------------------------------------------------------------ stopping

    def _tree(self) -> list[Any]:
        """Every live process this server started: components, their descendants, strays."""
        import psutil

        found: dict[int, psutil.Process] = {}
        for proc in self.processes.values():
            try:
                root = psutil.Process(proc.pid)
                found[root.pid] = root
                for child in root.children(recursive=True):
                    found[child.pid] = child
            except psutil.Error:
                pass
        for stray in self.stray_processes():
            found[stray.pid] = stray
        return list(found.values())

    def stray_processes(self) -> list[Any]:
        """Processes whose environment has this server's AIRFLOW_HOME (orphaned tasks too)."""
        import psutil

        home = str(self.airflow_home)
        me = os.getpid()
        found = []
        for proc in psutil.process_iter(["pid"]):
            if proc.pid == me:
                continue
            try:
                if proc.environ().get("AIRFLOW_HOME") == home:
                    found.append(proc)
            except (psutil.Error, OSError):
                pass
        return found

    def stop(self, timeout: float = 30) -> None:
        """SIGINT to every component group, then SIGTERM, then SIGKILL; idempotent.

        ``stop_report`` records how long each component took to exit and how.
        """
        import psutil

        if self._session is not None:
            self._session.close()  # keep-alive connections would hold uvicorn's shutdown
            self._session = None
            self._token = None
        if not self._running:
            return
        self._running = False
        t0 = self._stop_t0 = time.monotonic()
        tree = self._tree()
        report: dict[str, str] = {}
        pending = {c: p for c, p in self.processes.items() if p.poll() is None}
        for c, p in self.processes.items():
            if c not in pending:
                report[c] = f"had exited ({p.returncode})"
        # The api-server goes last: it serves the execution API that running tasks need to
        # report their end while the scheduler waits for them.
        first = [c for c in pending if c != "api-server"]
        self._signal_and_wait(pending, first, first, signal.SIGINT, t0 + timeout * 0.6, report)
        last = [c for c in pending if c == "api-server"]
        self._signal_and_wait(
            pending, last, list(pending), signal.SIGINT, t0 + timeout * 0.8, report
        )
        rest = list(pending)
        self._signal_and_wait(pending, rest, rest, signal.SIGTERM, t0 + timeout, report)
        # Whatever is still alive: the component groups, the tree snapshot and strays.
        for c, proc in pending.items():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            report[c] = "SIGKILL"
        leftovers = [p for p in tree + self.stray_processes() if p.is_running()]
        for p in leftovers:
            with contextlib.suppress(psutil.Error):
                p.kill()
        psutil.wait_procs(leftovers, timeout=5)
        for proc in self.processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        report["killed leftovers"] = str(len(leftovers))
        report["total"] = f"{time.monotonic() - t0:.1f} s"
        self.stop_report = report
        self.processes = {}

    def _signal_and_wait(
        self,
        pending: dict[str, subprocess.Popen[bytes]],
        send_to: list[str],
        wait_for: list[str],
        sig: signal.Signals,
        deadline: float,
        report: dict[str, str],
    ) -> None:
        """Send ``sig`` to the groups of ``send_to``; wait until ``wait_for`` exited or ``deadline``.

        Exited components leave ``pending`` and get a line in ``report``.
        """
        import psutil

        t0 = self._stop_t0
        for c in send_to:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pending[c].pid, sig)
        stuck_since: dict[str, float] = {}
        while any(c in pending for c in wait_for) and time.monotonic() < deadline:
            for c in list(pending):
                ended = pending[c]
                if ended.poll() is not None:
                    report[c] = (
                        f"{sig.name} -> exit {ended.returncode} after {time.monotonic() - t0:.1f} s"
                    )
                    del pending[c]
            for c in ("triggerer", "scheduler"):
                if c not in pending:
                    continue
                proc = pending[c]
                stuck = self._stuck_children(c, proc.pid)
                if stuck is None:
                    stuck_since.pop(c, None)
                    continue
                since = stuck_since.setdefault(c, time.monotonic())
                if time.monotonic() - since < 2.0:
                    continue
                for child in stuck:
                    with contextlib.suppress(psutil.Error):
                        child.kill()
                if c == "triggerer":  # nothing left to wait for: end the wait itself
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        proc.wait(5)
                report[f"{c} unstuck"] = (
                    f"killed {len(stuck)} idle process(es) after {time.monotonic() - t0:.1f} s"
                )
                stuck_since[c] = time.monotonic() + 3.0  # give it time to finish
            time.sleep(0.05)

    @staticmethod
    def _stuck_children(component: str, pid: int) -> list[Any] | None:
        """Children to kill when a stopping component waits forever on them, else None.

        Two Airflow 3.3 shutdown stalls, both seen here:

        * triggerer: its supervisor notices the trigger runner's exit only when a 10 s
          ``select()`` times out (it waits on the runner's sockets, which are already closed).
          Stuck when the runner is gone: the triggerer itself has nothing left to do.
        * scheduler: ``LocalExecutor.end()`` sends one ``None`` per worker and ``join()``s them
          without a timeout; now and then one idle worker stays blocked reading the queue
          (its pill went elsewhere) and the scheduler waits forever. Stuck when every live
          worker is idle (proctitle ``... LocalExecutor: <idle>``): those are killed.
        """
        import psutil

        try:
            children = [
                ch for ch in psutil.Process(pid).children() if ch.status() != psutil.STATUS_ZOMBIE
            ]
        except psutil.Error:
            return None
        if component == "triggerer":
            return [] if not children else None
        workers = []
        for ch in children:
            try:
                title = " ".join(ch.cmdline())
            except psutil.Error:
                continue
            if "LocalExecutor" in title:
                if not title.rstrip().endswith("<idle>"):
                    return None  # a task is still running: wait for it
                workers.append(ch)
        return workers or None

    def memory(self) -> dict[str, int]:
        """RSS, PSS and USS of the whole process tree in bytes (PSS is the honest total)."""
        import psutil

        out = {"processes": 0, "rss": 0, "pss": 0, "uss": 0}
        for p in self._tree():
            try:
                info = p.memory_full_info()
            except psutil.Error:
                continue
            out["processes"] += 1
            out["rss"] += info.rss
            out["pss"] += getattr(info, "pss", 0)
            out["uss"] += getattr(info, "uss", 0)
        return out

    # ------------------------------------------------------------------ REST client

    def _new_token(self) -> str:
        resp = requests.post(
            self.base_url + "/auth/token",
            json={"username": self.username, "password": self.password},
            timeout=30,
        )
        if resp.status_code not in (200, 201):
            raise AirflowApiError("POST", "/auth/token", resp.status_code, resp.text)
        token = str(resp.json()["access_token"])
        self._token = token
        return token

    def request(self, method: str, path: str, **kw: Any) -> requests.Response:
        """``method path`` against the API with a bearer token, renewed once when rejected.

        Airflow answers 401 "Token Expired" for an expired token but 403 "Invalid JWT token"
        for one it cannot verify (say, issued before a restart with another secret).

        Returns the response whatever its status; see ``api()`` for raising on errors.
        """
        if not self.base_url:
            raise LocalServerError("AirflowServer is not started")
        if self._session is None:
            self._session = requests.Session()
        kw.setdefault("timeout", 60)
        url = self.base_url + path
        for attempt in (0, 1):
            token = self._token or self._new_token()
            headers = {**kw.pop("headers", {}), "Authorization": f"Bearer {token}"}
            resp = self._session.request(method, url, headers=headers, **kw)
            rejected = resp.status_code == 401 or (
                resp.status_code == 403 and "Invalid JWT token" in resp.text
            )
            if rejected and attempt == 0:
                self._token = None
                kw["headers"] = {k: v for k, v in headers.items() if k != "Authorization"}
                continue
            return resp
        raise AssertionError("unreachable")

    def api(self, method: str, path: str, ok: Iterable[int] = (200, 201, 204), **kw: Any) -> Any:
        """Like ``request`` but raises ``AirflowApiError`` unless the status is in ``ok``;
        returns the decoded JSON (None when the body is empty)."""
        resp = self.request(method, path, **kw)
        if resp.status_code not in set(ok):
            raise AirflowApiError(method, path, resp.status_code, resp.text)
        if not resp.content:
            return None
        try:
            return resp.json()
        except ValueError:
            return resp.text

    def health(self) -> dict[str, Any]:
        return dict(requests.get(self.base_url + _HEALTH_PATH, timeout=10).json())

    def import_errors(self) -> list[dict[str, Any]]:
        return list(self._paged("/api/v2/importErrors", "import_errors"))

    def _paged(self, path: str, key: str, page: int = 100) -> Iterator[dict[str, Any]]:
        offset = 0
        while True:
            body = self.api("GET", path, params={"limit": page, "offset": offset})
            items = body.get(key) or []
            yield from items
            offset += len(items)
            if not items or offset >= int(body.get("total_entries", 0)):
                return

    def wait_for_dag(self, dag_id: str, timeout: float = 120) -> dict[str, Any]:
        """Wait until the dag-processor has parsed ``dag_id``; returns the DAG's API record.

        Fails early when an import error is reported for a file that mentions ``dag_id``.
        """
        deadline = time.monotonic() + timeout
        path = f"/api/v2/dags/{_quote(dag_id)}"
        while True:
            resp = self.request("GET", path)
            if resp.status_code == 200:
                return dict(resp.json())
            if resp.status_code != 404:
                raise AirflowApiError("GET", path, resp.status_code, resp.text)
            errors = self.import_errors()
            mine = [e for e in errors if self._file_mentions(e.get("filename"), dag_id)]
            if mine or time.monotonic() > deadline:
                detail = "\n".join(
                    f"{e.get('filename')}:\n{e.get('stack_trace')}" for e in (mine or errors)
                )
                why = "has an import error" if mine else f"was not parsed within {timeout:.0f} s"
                raise LocalServerError(
                    f"DAG {dag_id!r} {why}; import errors: {detail or 'none'}\n"
                    + self._logs_of(["dag-processor"])
                )
            time.sleep(0.5)

    def _file_mentions(self, filename: str | None, text: str) -> bool:
        if not filename:
            return False
        path = Path(filename)
        if not path.is_absolute():
            path = self.dags_folder / path
        try:
            return text in path.read_text(errors="replace")
        except OSError:
            return False

    def unpause(self, dag_id: str) -> None:
        self.api("PATCH", f"/api/v2/dags/{_quote(dag_id)}", json={"is_paused": False})

    def pause(self, dag_id: str) -> None:
        self.api("PATCH", f"/api/v2/dags/{_quote(dag_id)}", json={"is_paused": True})

    def trigger(
        self, dag_id: str, conf: dict[str, Any] | None = None, run_id: str | None = None
    ) -> str:
        """Create a manual run (``logical_date`` null) and return its run id.

        A rejected conf (params validation) raises ``AirflowApiError`` with status 400.
        """
        body: dict[str, Any] = {"logical_date": None, "conf": conf or {}}
        if run_id is not None:
            body["dag_run_id"] = run_id
        created = self.api("POST", f"/api/v2/dags/{_quote(dag_id)}/dagRuns", json=body)
        return str(created["dag_run_id"])

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return dict(self.api("GET", f"/api/v2/dags/{_quote(dag_id)}/dagRuns/{_quote(run_id)}"))

    def wait_for_run(
        self, dag_id: str, run_id: str, timeout: float = 300, poll: float = 0.5
    ) -> str:
        """Poll the run until it is ``success`` or ``failed``; returns that state."""
        deadline = time.monotonic() + timeout
        while True:
            state = str(self.dag_run(dag_id, run_id)["state"])
            if state in TERMINAL_RUN_STATES:
                return state
            if time.monotonic() > deadline:
                break
            time.sleep(poll)
        dag = self.api("GET", f"/api/v2/dags/{_quote(dag_id)}")
        tis = self.task_instances(dag_id, run_id)
        states = ", ".join(
            f"{t['task_id']}[{t.get('map_index', -1)}]={t.get('state')}" for t in tis
        )
        hint = " (the DAG is paused: unpause() it)" if dag.get("is_paused") else ""
        raise LocalServerError(
            f"run {dag_id}/{run_id} still {state!r} after {timeout:.0f} s{hint}; tasks: "
            f"{states or 'none'}\n" + self._logs_of(["scheduler"])
        )

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """All task instances of a run, mapped ones included (one per ``map_index``)."""
        path = f"/api/v2/dags/{_quote(dag_id)}/dagRuns/{_quote(run_id)}/taskInstances"
        return list(self._paged(path, "task_instances"))

    @staticmethod
    def intervals(
        task_instances: Iterable[dict[str, Any]], task_id: str | None = None
    ) -> list[tuple[datetime, datetime | None]]:
        """(start_date, end_date) of the task instances that started (optionally one task)."""
        out = []
        for ti in task_instances:
            if task_id is not None and ti.get("task_id") != task_id:
                continue
            start = parse_time(ti.get("start_date"))
            if start is not None:
                out.append((start, parse_time(ti.get("end_date"))))
        return out

    def task_log(
        self, dag_id: str, run_id: str, task_id: str, try_number: int = 1, map_index: int = -1
    ) -> str:
        """The task's log as text, one line per log event."""
        path = (
            f"/api/v2/dags/{_quote(dag_id)}/dagRuns/{_quote(run_id)}/taskInstances/"
            f"{_quote(task_id)}/logs/{try_number}"
        )
        body = self.api(
            "GET",
            path,
            params={"map_index": map_index, "full_content": "true"},
            headers={"Accept": "application/json"},
        )
        content = body.get("content") if isinstance(body, dict) else body
        if isinstance(content, str):
            return content
        lines = []
        for item in content or []:
            if isinstance(item, str):
                lines.append(item)
                continue
            item = dict(item)
            parts = [str(item.pop(k)) for k in ("timestamp", "level") if item.get(k)]
            parts.append(str(item.pop("event", "")))
            item.pop("timestamp", None)
            item.pop("level", None)
            parts.extend(f"{k}={v}" for k, v in item.items() if v not in (None, ""))
            lines.append(" ".join(parts))
        return "\n".join(lines)

    def _create_or_patch(
        self,
        collection: str,
        key: str,
        body: dict[str, Any],
        patch_body: dict[str, Any] | None = None,
    ) -> Any:
        """POST to the collection; on 409 (it exists) PATCH the item instead."""
        resp = self.request("POST", f"/api/v2/{collection}", json=body)
        if resp.status_code in (200, 201):
            return resp.json()
        if resp.status_code != 409:
            raise AirflowApiError("POST", f"/api/v2/{collection}", resp.status_code, resp.text)
        path = f"/api/v2/{collection}/{_quote(key)}"
        return self.api("PATCH", path, json=patch_body if patch_body is not None else body)

    def create_pool(self, name: str, slots: int, description: str = "") -> dict[str, Any]:
        fields = {"slots": slots, "description": description, "include_deferred": False}
        # The PATCH model names the field "pool", forbids unknown fields and, without an
        # update_mask, wants every field.
        body = {"name": name, **fields}
        patch = {"pool": name, **fields}
        return dict(self._create_or_patch("pools", name, body, patch))

    def set_connection(
        self,
        conn_id: str,
        conn_type: str,
        host: str | None = None,
        login: str | None = None,
        password: str | None = None,
        port: int | None = None,
        schema: str | None = None,
        extra: dict[str, Any] | None = None,
        description: str | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"connection_id": conn_id, "conn_type": conn_type}
        for key, value in (
            ("host", host),
            ("login", login),
            ("password", password),
            ("port", port),
            ("schema", schema),
            ("description", description),
        ):
            if value is not None:
                body[key] = value
        if extra is not None:
            body["extra"] = json.dumps(extra)
        return dict(self._create_or_patch("connections", conn_id, body))

    def set_variable(self, key: str, value: Any, description: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "key": key,
            "value": value if isinstance(value, str) else json.dumps(value),
        }
        if description is not None:
            body["description"] = description
        return dict(self._create_or_patch("variables", key, body))

    # ------------------------------------------------------------------ analysis

    @staticmethod
    def max_overlap(intervals: Iterable[tuple[datetime, datetime | None]]) -> int:
        """Largest number of intervals running at one instant.

        An interval that ends exactly when another starts does not overlap it; an end of
        ``None`` (still running) counts as open-ended.
        """
        events: list[tuple[datetime, int]] = []
        for start, end in intervals:
            if end is not None and end < start:
                raise ValueError(f"interval ends before it starts: {start} > {end}")
            events.append((start, 1))
            if end is not None:
                events.append((end, -1))
        best = running = 0
        for _, delta in sorted(events, key=lambda e: (e[0], e[1])):  # ends (-1) first
            running += delta
            best = max(best, running)
        return best
