"""Tables, references, ratios and targets of one benchmark run, as Markdown.

Every ratio compares figures measured in the same run on the same data: files/s for the
small set S, MB/s (10^6 bytes) for the big set B. A reference is the best variant of its
group (rclone over --transfers, the oss2 uploader over its concurrencies).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import datetime
from typing import Any

COPY_KINDS = ("engine", "airflow", "rclone", "oss2", "cp", "read")


def code_of(fingerprint: str) -> str:
    """'ed575a04 (code 1a2b3c4d)' -> '1a2b3c4d': the part that names the code measured."""
    return fingerprint.split("(code ", 1)[-1].split(")", 1)[0].split(",", 1)[0]


def metric(row: Any) -> float:
    """MB/s for the big set, files (entries) per second for the others."""
    return row.mb_s if row.dataset == "B" else row.files_s


def fmt(x: float | None, digits: int = 0) -> str:
    if x is None:
        return "-"
    return f"{x:,.{digits}f}"


def ratio(a: float, b: float | None) -> str:
    if not b or not a:
        return ""
    return f"{a / b:.2f}x"


@dataclass
class Target:
    name: str
    measured: str
    goal: str
    ok: bool | None  # None: not measured
    note: str = ""

    @property
    def verdict(self) -> str:
        return "n/a" if self.ok is None else ("PASS" if self.ok else "MISS")


class Report:
    def __init__(self, bench: Any) -> None:
        self.b = bench
        self.rows = [r for r in bench.rows]
        ok = [r for r in self.rows if not r.error]
        self.ok = ok

        def best(rows: list[Any]) -> Any:
            return max(rows, key=metric) if rows else None

        def group(**kw: str) -> list[Any]:
            return [r for r in ok if all(getattr(r, k) == v for k, v in kw.items())]

        self.rclone = {
            (s, ds): best(group(kind="rclone", source=s, dataset=ds))
            for s in ("local", "smb")
            for ds in ("S", "B")
        }
        self.oss2 = {ds: best(group(kind="oss2", dataset=ds)) for ds in ("S", "B")}
        self.cp = {ds: best(group(kind="cp", dataset=ds, variant="-r")) for ds in ("S", "B")}
        self.cp_sync = {
            ds: best(group(kind="cp", dataset=ds, variant="-r + fsync")) for ds in ("S", "B")
        }
        self.read = {
            (s, ds, v): best(group(kind="read", source=s, dataset=ds, variant=v))
            for s in ("local", "nfs", "smb")
            for ds in ("S", "B")
            for v in ("1p", "2p")
        }
        self.engine = {
            (s, d, ds): best(
                [
                    r
                    for r in group(kind="engine", source=s, dest=d, dataset=ds)
                    if r.variant.startswith("w=") and " " not in r.variant
                ]
            )
            for s in ("local", "nfs", "smb")
            for d in ("local", "oss")
            for ds in ("S", "B")
        }

    # -- references per row -----------------------------------------------------------

    def refs(self, r: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if r.kind not in COPY_KINDS or r.dataset not in ("S", "B"):
            return out
        if r.kind in ("engine", "airflow") and r.dest == "local":
            out["rclone"] = self.rclone.get((r.source, r.dataset))
        if r.kind in ("engine", "airflow") and r.dest == "oss":
            out["oss2"] = self.oss2.get(r.dataset)
        if r.kind != "cp":
            out["cp"] = self.cp.get(r.dataset)
            if r.dest == "local":
                out["cp_sync"] = self.cp_sync.get(r.dataset)
        if r.kind != "read":
            src = "local" if r.kind in ("oss2", "cp") else r.source
            out["read1"] = self.read.get((src, r.dataset, "1p"))
            out["read2"] = self.read.get((src, r.dataset, "2p"))
        if r.kind == "airflow":
            out["engine"] = self.engine.get((r.source, r.dest, r.dataset))
        return out

    # -- derived figures ----------------------------------------------------------------

    def fit_engine(self, n: int) -> Any:
        """The engine-alone baseline of the Airflow fit run with ``n`` subtasks."""
        found = [r for r in self.ok if r.kind == "engine" and r.variant == f"fit n={n}"]
        # Or the engine matrix row, when it ran the same job (same subtasks).
        found += [
            r
            for r in self.ok
            if r.label == "engine nfs->oss S w=2" and r.extra.get("subtasks") == n
        ]
        return found[0] if found else None

    def airflow_fit(self) -> dict[str, Any] | None:
        n1, n2 = self.b.cfg["fit_subtasks"]
        rows = {}
        for n in (n1, n2):
            eng = self.fit_engine(n)
            af = next(
                (r for r in self.ok if r.kind == "airflow" and r.variant == f"fit n={n}"), None
            )
            if eng is None or af is None:
                return None
            rows[("engine", n)] = eng
            rows[("airflow", n)] = af
        a1 = rows[("airflow", n1)]
        a2 = rows[("airflow", n2)]
        # The subtask counts Airflow really ran (partition may round).
        m1 = a1.extra.get("subtasks") or n1
        m2 = a2.extra.get("subtasks") or n2
        o1 = a1.seconds - rows[("engine", n1)].seconds
        o2 = a2.seconds - rows[("engine", n2)].seconds
        per = (o2 - o1) / (m2 - m1) if m2 != m1 else 0.0
        fixed = o1 - per * m1
        return {
            "n1": m1,
            "n2": m2,
            "overhead1": o1,
            "overhead2": o2,
            "fixed": fixed,
            "per_subtask": per,
            "rows": rows,
        }

    def crc_cost(self) -> dict[str, Any] | None:
        crc = next((r for r in self.ok if r.kind == "crc"), None)
        if crc is None:
            return None
        out: dict[str, Any] = {
            "crc_gb_s": crc.extra["crc_gb_s"],
            "crc_seconds": crc.extra["crc_seconds"],
            "bytes": crc.bytes,
            "copy_with": crc.extra["copy_with_crc_s"],
            "copy_without": crc.extra["copy_without_crc_s"],
        }
        # The share of the copy's time the CRC takes: what the copy gains when it is free.
        out["share"] = 1 - out["copy_without"] / out["copy_with"]
        return out

    def airflow_vs_engine(self, n: int) -> dict[str, Any] | None:
        """An Airflow run of set S in ``n`` subtasks against the engine alone on the same
        job: measured when a run of ``n`` subtasks exists, else from the fit's line."""
        eng = self.fit_engine(n)
        if eng is None:
            return None
        runs = [
            r
            for r in self.ok
            if r.kind == "airflow"
            and r.source == "nfs"
            and r.dest == "oss"
            and r.dataset == "S"
            and "warm-up" not in r.variant
            and r.extra.get("subtasks") == n
        ]
        if runs:
            af = min(runs, key=lambda r: r.seconds)
            return {"airflow_s": af.seconds, "engine_s": eng.seconds, "how": af.label}
        fit = self.airflow_fit()
        if fit is None:
            return None
        added = fit["fixed"] + fit["per_subtask"] * n
        return {
            "airflow_s": eng.seconds + added,
            "engine_s": eng.seconds,
            "how": f"from the fit over {fit['n1']} and {fit['n2']} subtasks "
            f"({fit['fixed']:.1f} s + {fit['per_subtask']:.2f} s per subtask)",
        }

    def copy_rss(self) -> Any:
        """The engine row whose largest process peaked highest."""
        rows = [r for r in self.ok if r.kind == "engine" and r.rss_proc_mb]
        return max(rows, key=lambda r: r.rss_proc_mb) if rows else None

    def targets(self) -> list[Target]:
        """Every goal a ratio within this run (or a memory bound), the absolute figures
        beside it: the machines differ by 2-3x from day to day, the ratios much less."""
        t: list[Target] = []

        def vs(name: str, mine: Any, ref: Any, goal: float, unit: str) -> None:
            if mine is None or ref is None:
                t.append(Target(name, "not measured", f">= {goal}x", None))
                return
            r = metric(mine) / metric(ref)
            t.append(
                Target(
                    name,
                    f"{r:.2f}x ({fmt(metric(mine))} vs {fmt(metric(ref))} {unit})",
                    f">= {goal}x",
                    r >= goal,
                    f"{mine.label} vs {ref.label}",
                )
            )

        vs(
            "SMB small set vs rclone",
            self.engine.get(("smb", "local", "S")),
            self.rclone.get(("smb", "S")),
            1.5,
            "files/s",
        )
        vs(
            "SMB big set vs rclone",
            self.engine.get(("smb", "local", "B")),
            self.rclone.get(("smb", "B")),
            2.0,
            "MB/s",
        )
        vs(
            "NFS small set copy vs raw NFS read, 2 processes",
            self.engine.get(("nfs", "local", "S")),
            self.read.get(("nfs", "S", "2p")),
            0.9,
            "files/s",
        )
        vs(
            "NFS big set copy vs raw NFS read, 2 processes",
            self.engine.get(("nfs", "local", "B")),
            self.read.get(("nfs", "B", "2p")),
            0.8,
            "MB/s",
        )
        for ds, unit in (("S", "files/s"), ("B", "MB/s")):
            vs(
                f"into OSS, set {ds}, vs plain oss2 uploader at its best",
                self.engine.get(("local", "oss", ds)),
                self.oss2.get(ds),
                0.8,
                unit,
            )
        n = 10
        af = self.airflow_vs_engine(n)
        name = f"Airflow run vs engine alone, {n} subtasks (NFS -> OSS, set S)"
        if af is None:
            t.append(Target(name, "not measured", "<= 1.25x", None))
        else:
            r = af["airflow_s"] / af["engine_s"]
            t.append(
                Target(
                    name,
                    f"{r:.2f}x ({af['airflow_s']:.1f} s vs {af['engine_s']:.1f} s)",
                    "<= 1.25x",
                    r <= 1.25,
                    af["how"],
                )
            )
        crc = self.crc_cost()
        if crc is None:
            t.append(Target("CRC-64 share of the copy", "not measured", "< 2 %", None))
        else:
            t.append(
                Target(
                    "CRC-64 share of the copy",
                    f"{crc['share'] * 100:.1f} % ({crc['copy_with']:.3f} s with, "
                    f"{crc['copy_without']:.3f} s without)",
                    "< 2 %",
                    crc["share"] < 0.02,
                    f"set B copied local -> local as the engine copies a file, with the CRC "
                    f"and with a CRC that costs nothing (best of each); CRC alone "
                    f"{crc['crc_gb_s']:.1f} GB/s",
                )
            )
        big = self.copy_rss()
        t.append(
            Target(
                "peak RSS of one copy process",
                f"{fmt(big.rss_proc_mb)} MB" if big else "not measured",
                "<= 256 MB",
                None if big is None else big.rss_proc_mb <= 256,
                f"the largest process of any engine case: {big.label}" if big else "",
            )
        )
        scan = next(
            (r for r in self.ok if r.kind == "scan" and r.source == "nfs" and r.dataset == "M"),
            None,
        )
        find = next((r for r in self.ok if r.kind == "find" and r.dataset == "M"), None)
        # 50,000 entries/s against find's 412,337 on 2026-11-26: the former absolute goal.
        vs("scan of set M on NFS vs find", scan, find, 0.12, "entries/s")
        t.append(
            Target(
                "scan of set M on NFS: peak RSS",
                f"{fmt(scan.rss_mb)} MB" if scan else "not measured",
                "< 256 MB",
                None if scan is None else (scan.rss_mb or 0) < 256,
                f"{scan.files:,} entries" if scan else "",
            )
        )
        return t

    # -- output --------------------------------------------------------------------------

    def _table(self, head: list[str], rows: list[list[str]]) -> list[str]:
        out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
        out += ["| " + " | ".join(r) + " |" for r in rows]
        return out

    def copy_table(self) -> list[str]:
        head = [
            "case",
            "files",
            "MB",
            "s",
            "files/s",
            "MB/s",
            "peak RSS MB",
            "largest process MB",
            "vs rclone",
            "vs oss2",
            "vs cp",
            "vs cp+fsync",
            "vs read 1p",
            "vs read 2p",
            "vs engine",
        ]
        body = []
        for r in self.rows:
            if r.kind not in COPY_KINDS:
                continue
            if r.error:
                body.append([r.label, "", "", "", "", "", "", "", f"ERROR: {r.error}", *[""] * 6])
                continue
            refs = self.refs(r)
            keys = ("rclone", "oss2", "cp", "cp_sync", "read1", "read2", "engine")
            ratios = {
                k: ratio(metric(r), metric(refs[k])) if refs.get(k) is not None else ""
                for k in keys
            }

            body.append(
                [
                    r.label,
                    fmt(r.files),
                    fmt(r.bytes / 1e6, 1),
                    fmt(r.seconds, 2),
                    fmt(r.files_s),
                    fmt(r.mb_s, 1),
                    fmt(r.rss_mb),
                    fmt(getattr(r, "rss_proc_mb", None)),
                    ratios["rclone"],
                    ratios["oss2"],
                    ratios["cp"],
                    ratios["cp_sync"],
                    ratios["read1"],
                    ratios["read2"],
                    ratios["engine"],
                ]
            )
        return self._table(head, body)

    def phase_table(self) -> list[str]:
        head = [
            "engine case",
            "subtasks",
            "setup+scan s",
            "partition s",
            "copy s",
            "verify s",
            "report s",
            "copy-phase files/s",
            "copy-phase MB/s",
        ]
        body = []
        for r in self.ok:
            ph = r.extra.get("phases") if r.kind == "engine" else None
            if not ph:
                continue
            c = ph["copy"]
            body.append(
                [
                    r.label,
                    str(r.extra.get("copy_tasks", r.extra.get("subtasks", ""))),
                    fmt(ph["setup+scan"], 2),
                    fmt(ph["partition"], 2),
                    fmt(c, 2),
                    fmt(ph["verify"], 2),
                    fmt(ph["report"], 2),
                    fmt(r.files / c if c else None),
                    fmt(r.bytes / c / 1e6 if c else None, 1),
                ]
            )
        return self._table(head, body)

    def scan_table(self) -> list[str]:
        head = ["scan", "entries", "s", "entries/s", "peak RSS MB", "vs find", "vs rclone lsf -R"]
        body = []
        for r in self.rows:
            if r.kind not in ("scan", "find", "lsf"):
                continue
            if r.error:
                body.append([r.label, "", "", "", "", f"ERROR: {r.error}", ""])
                continue
            find = next((x for x in self.ok if x.kind == "find" and x.dataset == r.dataset), None)
            lsf = next((x for x in self.ok if x.kind == "lsf" and x.dataset == r.dataset), None)
            body.append(
                [
                    r.label,
                    fmt(r.files),
                    fmt(r.seconds, 2),
                    fmt(r.files_s),
                    fmt(r.rss_mb),
                    ratio(r.files_s, find.files_s) if find and r.kind != "find" else "",
                    ratio(r.files_s, lsf.files_s) if lsf and r.kind != "lsf" else "",
                ]
            )
        return self._table(head, body)

    def airflow_table(self) -> list[str]:
        head = [
            "run",
            "trigger->end s",
            "engine alone s",
            "added s",
            "copy tasks",
            "copy span s",
            "mean copy task s",
            "other tasks (s each)",
            "peak PSS MB",
        ]
        body = []
        for r in self.ok:
            if r.kind != "airflow":
                continue
            if r.variant.startswith("fit"):
                eng = self.fit_engine(int(r.variant.split("=")[1]))
            else:
                eng = self.engine.get((r.source, r.dest, r.dataset))
            tasks = r.extra.get("task_seconds") or {}
            body.append(
                [
                    r.label,
                    fmt(r.seconds, 1),
                    fmt(eng.seconds, 1) if eng else "-",
                    fmt(r.seconds - eng.seconds, 1) if eng else "-",
                    str(r.extra.get("copy_tasks", r.extra.get("subtasks", ""))),
                    fmt(r.extra.get("copy_span"), 1),
                    fmt(r.extra.get("copy_task_mean"), 1),
                    ", ".join(f"{k} {v:.1f}" for k, v in tasks.items()),
                    fmt(r.rss_mb),
                ]
            )
        return self._table(head, body)

    def markdown(self) -> str:
        b = self.b
        info = b.info
        lines = [
            f"# sharelift benchmark: {datetime.now():%Y-%m-%d %H:%M} on {info['host']} ({b.mode})",
            "",
            "Command: `" + " ".join([".venv/bin/python bench/run.py", *sys.argv[1:]]) + "`",
            "",
            f"Wall time {(__import__('time').time() - b.started) / 60:.1f} min; load average "
            f"at start {b.load_start[0]:.2f}, at the end {__import__('os').getloadavg()[0]:.2f} "
            "(the machine is shared: compare ratios within this run).",
            "",
            "## Machine",
            "",
        ]
        code_end = info["sharelift"].split("git ", 1)[-1]
        if code_of(b.code_start) != code_of(code_end):
            lines[-2:-2] = [
                f"**The code under measurement changed during the run** (git {b.code_start} "
                f"at the start, {code_end} at the end): rows measured before and after the "
                "change are not comparable.",
                "",
            ]
        lines += self._table(["", ""], [[k, v] for k, v in info.items()])
        s_files, s_bytes = b.totals.get("S", (0, 0))
        b_files, b_bytes = b.totals.get("B", (0, 0))
        m_files, m_bytes = b.totals.get("M", (0, 0))
        gen = b.gen_seconds
        lines += [
            "",
            "## Data sets (deterministic, generated by `bench/datagen.py`)",
            "",
            f"- S: {s_files:,} files of 1-64 KiB in {b.spec.s_folders} folders, "
            f"{s_bytes / 1e6:,.1f} MB"
            + (f" (generated in {gen['small']:.1f} s)" if "small" in gen else ""),
            f"- B: {b_files} files of {b.spec.b_mib} MiB, {b_bytes / 1e6:,.1f} MB"
            + (f" (generated in {gen['big']:.1f} s)" if "big" in gen else ""),
            f"- M: {m_files:,} empty-to-tiny files (3 in 4 empty) in folders of 1,000, "
            f"{m_bytes / 1e6:,.1f} MB"
            + (f" (generated in {gen['many']:.1f} s)" if "many" in gen else ""),
            "",
            "Served by the test-bed servers on 127.0.0.1 from one folder: nfs-ganesha (NFSv3, "
            "read-only export), Samba (one share), `sharelift ossd` with fsync off. Every source "
            "read is warm (page cache): this measures the software, not the disk.",
            "",
            "## Targets",
            "",
        ]
        lines += self._table(
            ["target", "measured", "goal", "verdict", "how"],
            [[x.name, x.measured, x.goal, x.verdict, x.note] for x in self.targets()],
        )
        lines += [
            "",
            "## Copies: files/s, MB/s, peak RSS and ratios",
            "",
            "Ratios use files/s for S and MB/s for B. rclone and oss2 are their best variant; "
            "`read 1p/2p` is the raw read of the same source with sharelift's source class in "
            "1 or 2 processes; engine = `run_job` (scan+partition+copy+verify+report, "
            "w = worker processes or threads); airflow = the `sharelift_migrate` DAG from "
            "trigger to the end of the run (peak RSS column: PSS of the whole Airflow tree). "
            "Peak RSS is the summed RSS of the process tree, sampled every 50 ms; the largest "
            "process is the highest peak of any one process of the tree (its `ru_maxrss` "
            "where known).",
            "",
        ]
        lines += self.copy_table()
        lines += ["", "### Engine phases (seconds)", ""]
        lines += self.phase_table()
        lines += ["", "## Scanning (entries/s; peak RSS of the scanning process)", ""]
        lines += self.scan_table()
        slots = b.args.pool_slots or "20 (the `sharelift airflow-setup` default)"
        lines += [
            "",
            "## Through Airflow",
            "",
            f"LocalExecutor, parallelism 24, copy pool slots: {slots}.",
            "",
        ]
        lines += self.airflow_table()
        fit = self.airflow_fit()
        if fit:
            lines += [
                "",
                f"Added time = trigger->end minus the engine alone with the same subtasks: "
                f"{fit['overhead1']:.1f} s at {fit['n1']} subtasks, {fit['overhead2']:.1f} s at "
                f"{fit['n2']}: **fixed {fit['fixed']:.1f} s + {fit['per_subtask']:.2f} s per "
                f"subtask**.",
            ]
        crc = self.crc_cost()
        if crc:
            lines += [
                "",
                "## CRC-64",
                "",
                f"- `sharelift.checksum.crc64` over set B in memory: {crc['crc_gb_s']:.1f} GB/s "
                f"({crc['crc_seconds']:.3f} s for {crc['bytes'] / 1e6:,.0f} MB, one thread).",
                f"- Set B copied local -> local as the engine copies a file "
                f"(`transfer.copy_file`: read-ahead thread, put): {crc['copy_with']:.3f} s with "
                f"the CRC, {crc['copy_without']:.3f} s with a CRC that costs nothing: "
                f"**{crc['share'] * 100:.1f} %** of the copy (best of 7 each, alternating).",
            ]
        lines += self.plan_lines()
        errors = [r for r in self.rows if r.error]
        if errors:
            lines += ["", "## Errors", ""]
            lines += [f"- {r.label}: {r.error}" for r in errors]
        return "\n".join(lines) + "\n"

    def plan_lines(self) -> list[str]:
        """The synthetic plan case: scan, partition and bookkeeping of a very large job."""
        plans = [r for r in self.ok if r.kind == "plan"]
        if not plans:
            return []
        lines = [
            "",
            "## A very large job's plan (synthetic listing, no files)",
            "",
            "Scan into the state database, partition into subtasks of 1,000 files and at most "
            "1,024 groups, then every group worked through as a copy task does with the state "
            "database (its subtasks looked up, their manifest rows read, each marked done; no "
            "file copied, no per-file outcome). Each phase in a process of its own.",
            "",
        ]
        head = ["case", "state db", "subtasks", "groups", "phase", "s", "s per 10^6", "peak RSS MB"]
        rows = []
        for r in plans:
            for phase, seconds in r.extra["phases"].items():
                rows.append(
                    [
                        r.label,
                        r.extra.get("state_db", ""),
                        f"{r.extra['subtasks']:,}",
                        f"{r.extra['groups']:,}",
                        phase,
                        fmt(seconds, 1),
                        fmt(r.extra["seconds_per_million"][phase], 1),
                        fmt(r.extra["phase_rss_mb"][phase]),
                    ]
                )
        return lines + self._table(head, rows)

    def console(self) -> str:
        lines = ["TARGETS"]
        for x in self.targets():
            lines.append(f"  {x.verdict:4s}  {x.name}: {x.measured} (goal {x.goal})  {x.note}")
        return self.markdown() + "\n" + "\n".join(lines) + "\n"
