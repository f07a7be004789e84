"""Runs ``docker-compose.yaml`` without Docker: every service's command as native processes.

Docker is not available where the tests run, so ``NativeCompose`` reads the compose file and
does what ``docker compose up`` would, with the local installation in place of the images
and 127.0.0.1 in place of the container network. The file cannot rot: the services'
commands, environment, dependencies and health checks are the ones that run.

How the container world is mapped (each rule replaces something Docker gives for free):

* **Interpolation**: ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``, ``${VAR:?error}``,
  ``${VAR?error}`` and ``$$`` from the ``env`` given (the ``.env`` file's role; the
  caller's own environment is not read). Hand-written (a dozen lines): PyYAML resolves
  anchors and ``<<:`` merge keys, but no maintained library does compose interpolation
  without Docker's own CLI.
* **Network**: every port a service exposes (``expose``, the container side of ``ports``)
  gets a free port on 127.0.0.1, per replica. In environment values, command arguments and
  health checks, ``<service>:<port>`` becomes ``127.0.0.1:<its port>``, ``localhost:<own
  port>`` and a bare ``<own port>`` argument or value become the replica's port, and
  ``0.0.0.0`` becomes ``127.0.0.1``.
* **Filesystem**: each replica has a root folder standing for its container's filesystem.
  Mount targets inside it are symbolic links: named volumes to one folder per volume
  (shared by every replica mounting it, as in Docker; ``private_volumes`` gives each
  replica its own), bind mounts to the repository path, ``configs`` to a file with their
  ``content``. An environment value or argument that is an absolute path under a mount
  target or under the image's home folders (``AIRFLOW_HOME``, ``HOME``) is prefixed with
  the root, so replicas share exactly what containers would.
* **Images**: ``postgres:*`` is Debian's PostgreSQL (initdb with ``POSTGRES_USER``/
  ``POSTGRES_PASSWORD``, then ``POSTGRES_DB`` and the ``/docker-entrypoint-initdb.d/*.sql``
  scripts on first start, run as the ``postgres`` user; ``fsync=off`` as in the test bed);
  ``redis:*`` is Debian's ``redis-server`` with the service's arguments, bound to
  127.0.0.1 with its ``/data`` in the replica root; any other image (the sharelift image)
  runs its command with this virtual environment's ``airflow`` and ``sharelift`` first on
  ``PATH``, ``AIRFLOW_HOME=/opt/airflow`` and ``HOME=/home/airflow``.
* **Host names**: a replica is ``<service>-<n>``, in ``$HOSTNAME`` like a container's.
  Airflow processes report it as their host name (``[core] hostname_callable`` set to
  ``tests.deployment.container_hostname``), and an ``airflow celery worker`` without
  ``--celery-hostname`` gets ``celery@<replica>``: native processes all share the machine's
  name, which Celery and the task instances' ``hostname`` would otherwise show.
* **Loopback only**: the worker's and triggerer's log servers bind every interface
  (``airflow.utils.serve_logs`` hard-codes host ``""``), right inside a container but not
  on a shared machine, so they get ``--skip-serve-logs``; task logs stay in each replica's
  ``$AIRFLOW_HOME/logs``.
* **Start order**: ``depends_on`` conditions (``service_started``, ``service_healthy``,
  ``service_completed_successfully``); health checks (``CMD``, ``CMD-SHELL``) run natively,
  polled every ``start_interval`` until they pass. Services in a ``profiles`` list are left
  out unless the profile is asked for.
* **Stopping** (``down()``, also when ``up()`` fails): dependents first, like ``docker
  compose down``: ``stop_signal`` (SIGTERM; SIGINT for PostgreSQL, as its image sets) to the
  replica's process group, ``stop_grace_period`` (10 s) at most, then SIGKILL to whatever
  is left of the replica. A replica's processes are its root process's descendants plus
  every process whose environment carries its marker (``NATIVE_COMPOSE_REPLICA``): task
  processes that Airflow puts in process groups of their own, or that outlive a parent.

Not emulated: ``restart`` policies, ``user``, ``cap_add``, resource limits, ``ports``
publishing on fixed host ports (the test picks free ones instead).
"""

from __future__ import annotations

import contextlib
import copy
import os
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import yaml

from sharelift.local.ports import LOOPBACK, free_port, log_tail

REPO = Path(__file__).resolve().parents[2]
MARKER = "NATIVE_COMPOSE_REPLICA"
HOSTNAME_CALLABLE = "tests.deployment.container_hostname.hostname"
# The image's environment (apache/airflow sets these; the sharelift image inherits them).
SHARELIFT_IMAGE_ENV = {"AIRFLOW_HOME": "/opt/airflow", "HOME": "/home/airflow"}

_INTERPOLATION = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)")


class ComposeError(RuntimeError):
    """The compose file cannot be run natively, or a service failed (with its log tail)."""


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """Compose's variable substitution over every string of ``value``."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def sub(m: re.Match[str]) -> str:
        if m.group("escaped"):
            return "$"
        name = m.group("name") or m.group("bare")
        op, arg = m.group("op"), m.group("arg") or ""
        present = name in env
        usable = present and (env[name] != "" or not (op or "").startswith(":"))
        if op in ("-", ":-"):
            return env[name] if usable else arg
        if op in ("?", ":?") and not usable:
            raise ComposeError(f"variable {name} is required: {arg or 'not set'}")
        return env.get(name, "")

    return _INTERPOLATION.sub(sub, value)


def duration(text: str | int | float | None, default: float) -> float:
    """A compose duration (``1m30s``, ``10s``, ``500ms``) in seconds."""
    if text is None:
        return default
    if isinstance(text, int | float):
        return float(text)
    unit = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6}
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ComposeError(f"not a compose duration: {text!r}")
    return sum(float(n) * unit[u] for n, u in parts)


def _merge(base: Any, extra: Any) -> Any:
    """``extra`` over ``base`` like an override file: mappings merge, anything else replaces."""
    if isinstance(base, dict) and isinstance(extra, dict):
        out = dict(base)
        for k, v in extra.items():
            out[k] = _merge(base.get(k), v) if k in base else copy.deepcopy(v)
        return out
    return copy.deepcopy(extra)


def _env_mapping(env: Any) -> dict[str, str]:
    if env is None:
        return {}
    if isinstance(env, list):
        pairs = (item.split("=", 1) if "=" in item else (item, "") for item in env)
        return {k: v for k, v in pairs}
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def _container_port(spec: Any) -> int:
    """``"127.0.0.1:8080:8080"``, ``"8080:8080"``, ``"8080"``, ``"8080/tcp"`` -> 8080."""
    text = str(spec["target"] if isinstance(spec, dict) else spec)
    return int(text.rsplit(":", 1)[-1].split("/")[0])


@dataclass
class Service:
    name: str
    spec: dict[str, Any]

    @property
    def image(self) -> str:
        return str(self.spec.get("image", ""))

    @property
    def command(self) -> list[str]:
        cmd = self.spec.get("command")
        if cmd is None:
            return []
        return shlex.split(cmd) if isinstance(cmd, str) else [str(c) for c in cmd]

    @property
    def environment(self) -> dict[str, str]:
        return _env_mapping(self.spec.get("environment"))

    @property
    def ports(self) -> list[int]:
        found = [_container_port(p) for p in self.spec.get("expose", [])]
        found += [_container_port(p) for p in self.spec.get("ports", [])]
        return sorted(set(found))

    @property
    def depends_on(self) -> dict[str, str]:
        deps = self.spec.get("depends_on") or {}
        if isinstance(deps, list):
            return {d: "service_started" for d in deps}
        return {d: (c or {}).get("condition", "service_started") for d, c in deps.items()}

    @property
    def mounts(self) -> list[tuple[str, str]]:
        """(source, container target) of each volume; a source starting with . or / binds."""
        out = []
        for v in self.spec.get("volumes", []):
            if isinstance(v, dict):
                out.append((str(v.get("source", "")), str(v["target"])))
            else:
                parts = str(v).split(":")
                out.append((parts[0], parts[1]) if len(parts) > 1 else ("", parts[0]))
        return out

    @property
    def configs(self) -> list[tuple[str, str]]:
        out = []
        for c in self.spec.get("configs", []):
            if isinstance(c, dict):
                out.append((str(c["source"]), str(c.get("target") or "/" + c["source"])))
            else:
                out.append((str(c), "/" + str(c)))
        return out

    @property
    def healthcheck(self) -> dict[str, Any] | None:
        check = self.spec.get("healthcheck")
        if not check or check.get("disable") or check.get("test") in (["NONE"], "NONE"):
            return None
        return dict(check)

    @property
    def stop_signal(self) -> signal.Signals:
        default = "SIGINT" if self.kind == "postgres" else "SIGTERM"
        return signal.Signals[str(self.spec.get("stop_signal", default))]

    @property
    def stop_grace(self) -> float:
        return duration(self.spec.get("stop_grace_period"), 10.0)

    @property
    def kind(self) -> str:
        image = self.image.split("/")[-1]
        if image.startswith("postgres:") or image == "postgres":
            return "postgres"
        if image.startswith("redis:") or image == "redis":
            return "redis"
        return "sharelift"


@dataclass
class Replica:
    """One container's worth of processes: ``<service>-<n>``."""

    service: Service
    index: int
    root: Path
    ports: dict[int, int]  # container port -> port on 127.0.0.1
    env: dict[str, str] = field(default_factory=dict)
    argv: list[str] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None
    log: Path = Path()
    healthy: bool = False
    health_output: str = ""
    marker: str = ""

    @property
    def hostname(self) -> str:
        return f"{self.service.name}-{self.index}"

    def processes(self) -> list[psutil.Process]:
        """Every live process of this replica (see the module doc)."""
        found: dict[int, psutil.Process] = {}
        if self.process is not None:
            with contextlib.suppress(psutil.Error):
                root = psutil.Process(self.process.pid)
                found[root.pid] = root
                for child in root.children(recursive=True):
                    found[child.pid] = child
        me = os.getpid()
        for proc in psutil.process_iter(["pid"]):
            if proc.pid in found or proc.pid == me:
                continue
            with contextlib.suppress(psutil.Error, OSError):
                if proc.environ().get(MARKER) == self.marker:
                    found[proc.pid] = proc
        return [p for p in found.values() if _alive(p)]


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _pg_bin(name: str) -> str:
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    if not found:
        raise ComposeError(f"PostgreSQL's {name} not found: install Debian's postgresql package")
    return str(found[-1])


class NativeCompose:
    """``docker compose up``/``down`` of a compose file, run natively (see module doc)."""

    def __init__(
        self,
        compose_file: Path,
        workdir: Path,
        env: Mapping[str, str],
        *,
        scale: Mapping[str, int] | None = None,
        profiles: Iterable[str] = (),
        override: Mapping[str, Any] | None = None,
        private_volumes: Iterable[str] = (),
    ) -> None:
        self.compose_file = Path(compose_file).absolute()
        self.project_dir = self.compose_file.parent
        self.workdir = Path(workdir).absolute()
        raw = yaml.safe_load(self.compose_file.read_text())
        raw = {k: v for k, v in raw.items() if not str(k).startswith("x-")}
        if override:
            raw = _merge(raw, dict(override))
        self.model: dict[str, Any] = interpolate(raw, env)
        wanted = set(profiles)
        self.services = {
            name: Service(name, spec)
            for name, spec in self.model["services"].items()
            if not spec.get("profiles") or wanted & set(spec["profiles"])
        }
        self.scale = {name: 1 for name in self.services}
        for name, n in (scale or {}).items():
            if name not in self.services:
                raise ComposeError(f"cannot scale {name!r}: no such service")
            self.scale[name] = n
        self.private_volumes = set(private_volumes)
        self.replicas: dict[str, list[Replica]] = {}
        self._token = secrets.token_hex(4)
        self._peak_rss: dict[tuple[str, int], tuple[str, int]] = {}
        self._sampler: threading.Thread | None = None
        self._stop_sampling = threading.Event()
        self._lock = threading.Lock()
        self.started_at = 0.0
        self.healthy_after = 0.0

    # ------------------------------------------------------------------ mapping

    def _service_ref(self) -> re.Pattern[str]:
        names = "|".join(re.escape(n) for n in sorted(self.services, key=len, reverse=True))
        return re.compile(rf"(?<![\w.-])({names}):(\d+)\b")

    def port(self, service: str, container_port: int, index: int = 1) -> int:
        """The 127.0.0.1 port standing for ``service:container_port``."""
        return self.replicas[service][index - 1].ports[container_port]

    def url(self, service: str, container_port: int, index: int = 1) -> str:
        return f"http://{LOOPBACK}:{self.port(service, container_port, index)}"

    def _prefixes(self, replica: Replica) -> list[str]:
        prefixes = [target for _, target in replica.service.mounts]
        prefixes += [target for _, target in replica.service.configs]
        if replica.service.kind == "sharelift":
            prefixes += list(SHARELIFT_IMAGE_ENV.values())
        if replica.service.kind == "redis":
            prefixes.append("/data")
        return sorted(set(prefixes), key=len, reverse=True)

    def _rewrite(self, text: str, replica: Replica) -> str:
        def ref(m: re.Match[str]) -> str:
            target = self.replicas.get(m.group(1))
            port = int(m.group(2))
            if target and port in target[0].ports:
                return f"{LOOPBACK}:{target[0].ports[port]}"
            return m.group(0)

        text = self._service_ref().sub(ref, text)
        for own, mapped in replica.ports.items():
            text = re.sub(
                rf"\b(localhost|0\.0\.0\.0|127\.0\.0\.1):{own}\b", f"{LOOPBACK}:{mapped}", text
            )
            if text == str(own):
                return str(mapped)
        text = text.replace("0.0.0.0", LOOPBACK)
        for prefix in self._prefixes(replica):
            if text == prefix or text.startswith(prefix.rstrip("/") + "/"):
                return str(replica.root) + text
        return text

    def _volume_dir(self, name: str, replica: Replica) -> Path:
        if name in self.private_volumes:
            return self.workdir / "volumes" / f"{name}.{replica.hostname}"
        return self.workdir / "volumes" / name

    def _link(self, root: Path, target: str, source: Path) -> None:
        link = root / target.lstrip("/")
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.is_symlink():
            link.symlink_to(source)

    def _prepare_root(self, replica: Replica) -> None:
        root = replica.root
        root.mkdir(parents=True, exist_ok=True)
        for source, target in replica.service.mounts:
            if source.startswith((".", "/")):
                path = (self.project_dir / source).resolve()
                path.mkdir(parents=True, exist_ok=True)
            else:
                path = self._volume_dir(source or f"anonymous.{replica.hostname}", replica)
                path.mkdir(parents=True, exist_ok=True)
            self._link(root, target, path)
        configs = self.model.get("configs") or {}
        for source, target in replica.service.configs:
            spec = configs.get(source)
            if spec is None:
                raise ComposeError(f"service {replica.service.name}: no config named {source!r}")
            if "content" in spec:
                file = self.workdir / "configs" / source
                file.parent.mkdir(parents=True, exist_ok=True)
                file.write_text(spec["content"])
                file.chmod(0o644)
            else:
                file = (self.project_dir / spec["file"]).resolve()
            self._link(root, target, file)
        for home in ("/opt/airflow", "/home/airflow", "/data"):
            (root / home.lstrip("/")).mkdir(parents=True, exist_ok=True)

    def _replica_env(self, replica: Replica) -> dict[str, str]:
        venv_bin = str(Path(sys.executable).parent)
        env = {
            "PATH": f"{venv_bin}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
            "LANG": "C.UTF-8",
            "HOSTNAME": replica.hostname,
            MARKER: replica.marker,
        }
        if replica.service.kind == "sharelift":
            env.update(SHARELIFT_IMAGE_ENV)
            # Native stand-ins for what a container gives (module doc: host names).
            env["AIRFLOW__CORE__HOSTNAME_CALLABLE"] = HOSTNAME_CALLABLE
            env["PYTHONPATH"] = str(REPO)
        env.update(replica.service.environment)
        return {k: self._rewrite(v, replica) if k != MARKER else v for k, v in env.items()}

    def _argv(self, replica: Replica) -> list[str]:
        argv = [self._rewrite(a, replica) for a in replica.service.command]
        if argv[:3] == ["airflow", "celery", "worker"] and not (
            {"-H", "--celery-hostname"} & set(argv)
        ):
            argv += ["--celery-hostname", f"celery@{replica.hostname}"]
        serves_logs = argv[:3] == ["airflow", "celery", "worker"] or argv[:2] == [
            "airflow",
            "triggerer",
        ]
        if serves_logs and "--skip-serve-logs" not in argv:
            argv.append("--skip-serve-logs")
        return argv

    # ------------------------------------------------------------------ up

    def up(self, timeout: float = 300) -> NativeCompose:
        """Start every service in dependency order; return once all are healthy/started."""
        self.started_at = time.monotonic()
        deadline = self.started_at + timeout
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.workdir.chmod(0o755)
        try:
            self._create_replicas()
            self._start_sampler()
            self._start_all(deadline)
        except BaseException:
            self.down()
            raise
        self.healthy_after = time.monotonic() - self.started_at
        return self

    def _create_replicas(self) -> None:
        for name, service in self.services.items():
            for dep in service.depends_on:
                if dep not in self.services:
                    raise ComposeError(f"service {name} depends on {dep!r}, which is not started")
            self.replicas[name] = [
                Replica(
                    service,
                    i,
                    self.workdir / "containers" / f"{name}-{i}",
                    {p: free_port() for p in service.ports},
                    marker=f"{self._token}/{name}-{i}",
                )
                for i in range(1, self.scale[name] + 1)
            ]

    def _satisfied(self, name: str) -> bool:
        for dep, condition in self.services[name].depends_on.items():
            for r in self.replicas[dep]:
                if r.process is None:
                    return False
                if condition == "service_healthy" and not r.healthy:
                    return False
                if condition == "service_completed_successfully" and r.process.poll() != 0:
                    return False
        return True

    def _start_all(self, deadline: float) -> None:
        pending = list(self.services)
        checkers: list[threading.Thread] = []
        while True:
            for name in list(pending):
                if self._satisfied(name):
                    pending.remove(name)
                    for replica in self.replicas[name]:
                        self._start(replica, deadline)
                        t = threading.Thread(
                            target=self._watch_health, args=(replica, deadline), daemon=True
                        )
                        t.start()
                        checkers.append(t)
            self._check_exits()
            waiting = [
                r.hostname
                for rs in self.replicas.values()
                for r in rs
                if r.process is None or (r.service.healthcheck and not r.healthy)
            ]
            if not waiting:
                return
            if time.monotonic() > deadline:
                raise ComposeError(
                    f"not up in time: {', '.join(waiting)}\n" + self.logs_of(waiting)
                )
            time.sleep(0.2)

    def _check_exits(self) -> None:
        for rs in self.replicas.values():
            for r in rs:
                if r.process is None or r.process.poll() is None:
                    continue
                code = r.process.returncode
                one_shot = any(
                    self.services[s].depends_on.get(r.service.name)
                    == "service_completed_successfully"
                    for s in self.services
                )
                if code != 0 or not one_shot:
                    raise ComposeError(
                        f"{r.hostname} exited with {code}:\n" + self.logs_of([r.hostname])
                    )

    def logs_of(self, hostnames: Iterable[str], lines: int = 40) -> str:
        out = []
        for rs in self.replicas.values():
            for r in rs:
                if r.hostname in hostnames:
                    out.append(f"--- {r.hostname} ({r.log}):\n{log_tail(str(r.log), lines)}")
                    if r.health_output:
                        out.append(f"    last health check: {r.health_output[-500:]}")
        return "\n".join(out)

    def _start(self, replica: Replica, deadline: float) -> None:
        self._prepare_root(replica)
        replica.env = self._replica_env(replica)
        replica.log = self.workdir / "logs" / f"{replica.hostname}.log"
        replica.log.parent.mkdir(parents=True, exist_ok=True)
        kind = replica.service.kind
        if kind == "postgres":
            replica.argv = self._postgres_argv(replica)
        elif kind == "redis":
            replica.argv = self._redis_argv(replica)
        else:
            replica.argv = self._argv(replica)
        if not replica.argv:
            raise ComposeError(f"service {replica.service.name} has no command")
        with open(replica.log, "ab") as out:
            replica.process = subprocess.Popen(
                replica.argv,
                env=replica.env,
                cwd=str(replica.root),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        if kind == "postgres":
            self._postgres_first_start(replica, deadline)

    # ---- images replaced by Debian packages

    def _postgres_data(self, replica: Replica) -> Path:
        return replica.root / "var/lib/postgresql/data"

    def _as_postgres(self, *argv: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        return subprocess.run([*prefix, *argv], capture_output=True, text=True, timeout=120, **kw)

    def _postgres_argv(self, replica: Replica) -> list[str]:
        env = replica.service.environment
        data = self._postgres_data(replica).resolve()
        sockets = replica.root / "run/postgresql"
        sockets.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            for path in (data, sockets):
                shutil.chown(path, "postgres", "postgres")
        replica.env["PGDATA"] = str(data)
        if not (data / "PG_VERSION").exists():
            pwfile = self.workdir / f"{replica.hostname}.pw"
            pwfile.write_text(env.get("POSTGRES_PASSWORD", "") + "\n")
            if os.geteuid() == 0:
                shutil.chown(pwfile, "postgres", "postgres")
            pwfile.chmod(0o600)
            done = self._as_postgres(
                _pg_bin("initdb"),
                "-D",
                str(data),
                "-U",
                env.get("POSTGRES_USER", "postgres"),
                f"--pwfile={pwfile}",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--no-sync",
            )
            pwfile.unlink()
            if done.returncode != 0:
                raise ComposeError(f"initdb failed for {replica.hostname}: {done.stderr}")
            replica.env["_FRESH"] = "1"
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        return [
            *prefix,
            _pg_bin("postgres"),
            "-D",
            str(data),
            "-p",
            str(replica.ports[5432]),
            "-k",
            str(sockets),
            "-c",
            f"listen_addresses={LOOPBACK}",
            "-c",
            "fsync=off",
        ]

    def _postgres_first_start(self, replica: Replica, deadline: float) -> None:
        """What the image's entrypoint does once: POSTGRES_DB, then the init scripts."""
        if not replica.env.pop("_FRESH", None):
            return
        env = replica.service.environment
        user = env.get("POSTGRES_USER", "postgres")
        sockets = str(replica.root / "run/postgresql")
        conn = ["-h", sockets, "-p", str(replica.ports[5432]), "-U", user]
        while self._as_postgres("pg_isready", *conn, "-d", "postgres").returncode != 0:
            if replica.process is None or replica.process.poll() is not None:
                raise ComposeError("PostgreSQL exited:\n" + self.logs_of([replica.hostname]))
            if time.monotonic() > deadline:
                raise ComposeError("PostgreSQL not ready:\n" + self.logs_of([replica.hostname]))
            time.sleep(0.2)
        psql = ["psql", *conn, "-v", "ON_ERROR_STOP=1", "-q"]
        database = env.get("POSTGRES_DB", user)
        steps: list[list[str]] = []
        if database != "postgres":
            steps.append([*psql, "-d", "postgres", "-c", f'CREATE DATABASE "{database}"'])
        init_dir = replica.root / "docker-entrypoint-initdb.d"
        for script in sorted(init_dir.glob("*.sql")) if init_dir.exists() else []:
            steps.append([*psql, "-d", database, "-f", str(script.resolve())])
        for argv in steps:
            done = self._as_postgres(*argv)
            if done.returncode != 0:
                raise ComposeError(f"{' '.join(argv)} failed: {done.stderr}")

    def _redis_argv(self, replica: Replica) -> list[str]:
        argv = self._argv(replica) or ["redis-server"]
        return [*argv, "--bind", LOOPBACK, "--dir", str(replica.root / "data")]

    # ---- health

    def _health_argv(self, replica: Replica) -> list[str] | None:
        check = replica.service.healthcheck
        if check is None:
            return None
        test = check["test"]
        if isinstance(test, str):
            test = ["CMD-SHELL", test]
        if test[0] == "CMD":
            return [self._rewrite(str(a), replica) for a in test[1:]]
        if test[0] == "CMD-SHELL":
            return ["/bin/sh", "-c", self._rewrite(str(test[1]), replica)]
        raise ComposeError(f"{replica.service.name}: unknown healthcheck test {test[0]!r}")

    def _watch_health(self, replica: Replica, deadline: float) -> None:
        argv = self._health_argv(replica)
        if argv is None:
            return
        check = replica.service.healthcheck or {}
        every = duration(check.get("start_interval"), 5.0)
        timeout = duration(check.get("timeout"), 30.0)
        while time.monotonic() < deadline and not self._stop_sampling.is_set():
            if replica.process is None or replica.process.poll() is not None:
                return
            try:
                done = subprocess.run(
                    argv,
                    env=replica.env,
                    cwd=str(replica.root),
                    capture_output=True,
                    text=True,
                    timeout=timeout,
                )
                replica.health_output = (done.stdout + done.stderr).strip()
                if done.returncode == 0:
                    replica.healthy = True
                    return
            except subprocess.TimeoutExpired:
                replica.health_output = f"timed out after {timeout:.0f} s"
            time.sleep(every)

    # ------------------------------------------------------------------ while running

    def exec(
        self, service: str, argv: list[str], index: int = 1, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """``docker compose exec``: ``argv`` with the replica's environment and root."""
        replica = self.replicas[service][index - 1]
        return subprocess.run(
            [self._rewrite(a, replica) for a in argv],
            env=replica.env,
            cwd=str(replica.root),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def path(self, service: str, container_path: str, index: int = 1) -> Path:
        """The native path of ``container_path`` in a replica's filesystem."""
        return self.replicas[service][index - 1].root / container_path.lstrip("/")

    def kill(self, service: str, index: int, sig: signal.Signals = signal.SIGKILL) -> int:
        """``docker kill``: ``sig`` to every process of the replica; returns how many."""
        replica = self.replicas[service][index - 1]
        procs = replica.processes()
        for p in procs:
            with contextlib.suppress(psutil.Error):
                p.send_signal(sig)
        if sig == signal.SIGKILL:
            # The root is reaped by Popen, so that its exit status is kept (psutil would
            # reap it first and Popen would then report 0).
            root = replica.process.pid if replica.process is not None else None
            psutil.wait_procs([p for p in procs if p.pid != root], timeout=10)
            if replica.process is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    replica.process.wait(timeout=10)
        return len(procs)

    def _start_sampler(self) -> None:
        def sample() -> None:
            while not self._stop_sampling.wait(1.0):
                for rs in list(self.replicas.values()):
                    for r in rs:
                        for p in r.processes():
                            with contextlib.suppress(psutil.Error):
                                rss = p.memory_info().rss
                                name = " ".join(p.cmdline()[:4])[:80]
                                key = (r.hostname, p.pid)
                                with self._lock:
                                    if rss > self._peak_rss.get(key, ("", 0))[1]:
                                        self._peak_rss[key] = (name, rss)

        self._sampler = threading.Thread(target=sample, name="rss-sampler", daemon=True)
        self._sampler.start()

    def peak_rss(self) -> dict[str, list[tuple[int, str, int]]]:
        """Per replica: (pid, command, peak RSS in bytes) of every process seen, largest first
        (sampled every second while up)."""
        out: dict[str, list[tuple[int, str, int]]] = {}
        with self._lock:
            for (host, pid), (name, rss) in self._peak_rss.items():
                out.setdefault(host, []).append((pid, name, rss))
        return {h: sorted(v, key=lambda t: -t[2]) for h, v in sorted(out.items())}

    # ------------------------------------------------------------------ down

    def _tiers(self) -> list[list[str]]:
        """Services grouped so that every service comes before those it depends on."""
        depth: dict[str, int] = {}

        def level(name: str, seen: tuple[str, ...] = ()) -> int:
            if name in seen:
                raise ComposeError(f"dependency cycle: {' -> '.join((*seen, name))}")
            if name not in depth:
                deps = self.services[name].depends_on
                depth[name] = 1 + max((level(d, (*seen, name)) for d in deps), default=0)
            return depth[name]

        for name in self.services:
            level(name)
        top = max(depth.values(), default=0)
        return [[n for n, d in depth.items() if d == k] for k in range(top, 0, -1)]

    def down(self) -> dict[str, str]:
        """Stop every replica (module doc); idempotent. Returns how each one ended."""
        self._stop_sampling.set()
        report: dict[str, str] = {}
        for tier in self._tiers() if self.replicas else []:
            replicas = [r for name in tier for r in self.replicas.get(name, [])]
            threads = [
                threading.Thread(target=self._stop_replica, args=(r, report)) for r in replicas
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        if self._sampler is not None:
            self._sampler.join(timeout=5)
        return report

    def _stop_replica(self, replica: Replica, report: dict[str, str]) -> None:
        proc = replica.process
        if proc is None:
            return
        t0 = time.monotonic()
        tree = replica.processes()
        if proc.poll() is not None:
            how = f"had exited ({proc.returncode})"
        else:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, replica.service.stop_signal)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=replica.service.stop_grace)
            how = (
                f"{replica.service.stop_signal.name} -> exit {proc.returncode}"
                if proc.returncode is not None
                else "SIGKILL"
            )
        leftovers = [p for p in tree + replica.processes() if _alive(p)]
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        for p in leftovers:
            with contextlib.suppress(psutil.Error):
                p.kill()
        psutil.wait_procs(leftovers, timeout=5)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
        report[replica.hostname] = (
            f"{how} after {time.monotonic() - t0:.1f} s, {len(leftovers)} killed after"
        )
        replica.process = None if proc.returncode is not None else proc

    def leftovers(self) -> list[psutil.Process]:
        """Processes of any replica still alive (empty after ``down()``)."""
        return [p for rs in self.replicas.values() for r in rs for p in r.processes()]

    def __enter__(self) -> NativeCompose:
        return self.up()

    def __exit__(self, *exc: object) -> None:
        self.down()


@contextlib.contextmanager
def running(compose: NativeCompose, timeout: float = 300) -> Iterator[NativeCompose]:
    compose.up(timeout)
    try:
        yield compose
    finally:
        compose.down()
