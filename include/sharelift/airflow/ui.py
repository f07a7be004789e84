"""The sharelift page in the Airflow UI: jobs, runs, progress, throughput and reports.

Mounted by ``plugins/sharelift_plugin.py`` as a FastAPI app under ``/sharelift`` inside the
api-server, behind Airflow's own login (``Depends(get_user)``: the UI's session cookie or a
bearer token). It reads sharelift's state database only; the completed and error lists of
every run can be downloaded here as well as from the bucket.
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from fastapi import Body, Depends, FastAPI, HTTPException
from fastapi.responses import HTMLResponse, StreamingResponse

from sharelift.engine.states import number_runs, run_kind, run_state_mapping


def _require_user() -> Any:
    from airflow.api_fastapi.core_api.security import get_user

    return Depends(get_user)


app = FastAPI(title="sharelift", dependencies=[_require_user()])


def _state_url() -> str:
    from sharelift.airflow.state_connection import resolve_config

    return resolve_config().state_url


def _store() -> Any:
    from sharelift.engine.state import StateStore

    return StateStore(_state_url())


def _when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S") if ts else ""


@app.get("/api/runs")
def runs_json(job: str | None = None) -> list[dict[str, Any]]:
    store = _store()
    try:
        out = []
        for number, r in number_runs(store.list_runs(job)):
            counts = store.counts(r["job"], r["run_id"])
            out.append(
                {
                    "job": r["job"],
                    "run_id": r["run_id"],
                    "type": run_kind(r),
                    "number": number,
                    "run_number": r.get("run_number"),
                    "state": r["state"],
                    "started_at": _when(r["started_at"]),
                    "finished_at": _when(r["finished_at"]),
                    "files_scanned": r.get("files_scanned"),
                    "files_to_copy": r.get("files_to_copy"),
                    "bytes_to_copy": r.get("bytes_to_copy"),
                    "copied": counts.get("copied", (0, 0))[0],
                    "bytes_copied": counts.get("copied", (0, 0))[1],
                    "skipped": counts.get("skipped", (0, 0))[0],
                    "failed": counts.get("failed", (0, 0))[0],
                    "report": r.get("report_url"),
                    "cause": r.get("message"),
                }
            )
        return out
    finally:
        store.close()


@app.get("/api/flow-control/{job}")
def flow_control_get(job: str) -> dict[str, Any]:
    from sharelift.engine import flow_control as fc

    store = _store()
    try:
        setting = fc.get_flow_control(store, job)
        return {
            "job": job,
            "setting": setting.text if setting else None,
            "timezone": setting.timezone if setting else None,
            "limit_now_mb_per_s": setting.limit_at() if setting else None,
            "running_subtasks": len(fc.running_subtasks(store, job)),
        }
    finally:
        store.close()


@app.put("/api/flow-control/{job}")
def flow_control_put(job: str, body: dict[str, Any] = Body(...)) -> dict[str, Any]:  # noqa: B008
    """Set (``{"setting": "08:00-18:00=10", "timezone": "UTC"}``) or clear (``setting``
    null) a job's limits; running subtasks apply it within a second, no restart."""
    from sharelift.engine import flow_control as fc
    from sharelift.errors import ConfigError

    store = _store()
    try:
        if body.get("setting") in (None, ""):
            fc.clear_flow_control(store, job)
        else:
            fc.set_flow_control(
                store, job, fc.FlowControl.parse(str(body["setting"]), body.get("timezone"))
            )
    except ConfigError as exc:
        raise HTTPException(
            400, {"field": exc.field, "rule": exc.rule, "message": str(exc)}
        ) from None
    finally:
        store.close()
    return flow_control_get(job)


LIST_KINDS = ("total", "completed", "error")


@app.get("/runs/{job}/{run_id}/{kind}_list.txt")
def download_list(job: str, run_id: str, kind: str) -> StreamingResponse:
    """The run's three lists: the report's own copy from the bucket once it is written;
    before that, the completed and error lists so far from the state database (the total
    list exists only with the report)."""
    if kind not in LIST_KINDS:
        raise HTTPException(404, f"the lists are {', '.join(k + '_list.txt' for k in LIST_KINDS)}")
    store = _store()
    run = store.get_run(job, run_id)
    if run is None:
        store.close()
        raise HTTPException(404, f"job {job} has no run {run_id}")
    chunks: Iterator[bytes] | None = None
    if run.get("report_url"):
        store.close()
        chunks = _report_list(job, run_id, run.get("spec"), kind)
    elif kind == "total":
        store.close()
        raise HTTPException(404, "the total list is written with the report, at the end of the run")
    else:
        chunks = _state_list(store, job, run_id, kind)
    return StreamingResponse(
        chunks,
        media_type="text/plain; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{job}_{kind}_list.txt"'},
    )


def _state_list(store: Any, job: str, run_id: str, kind: str) -> Iterator[bytes]:
    from sharelift.engine.report import outcome_lines

    try:
        for line in outcome_lines(store, job, run_id, kind):
            yield line.encode()
    finally:
        store.close()


def _report_list(job: str, run_id: str, spec_json: str | None, kind: str) -> Iterator[bytes]:
    """Open the list object in the run's destination bucket (its connection, at the bucket
    root where reports live)."""
    import json

    from airflow.models.connection import Connection

    from sharelift.airflow.connections import destination_address
    from sharelift.engine.report import list_names, report_folder
    from sharelift.storage import open_destination

    spec = json.loads(spec_json or "{}").get("job") or {}
    conn_id = spec.get("destination")
    if not conn_id:
        raise HTTPException(404, "the run has no recorded destination to read its report from")
    try:
        address = destination_address(Connection.get_connection_from_secrets(conn_id), "")
        destination = open_destination(address)
        f = destination.open(report_folder(job, run_id) + list_names(job)[kind])
    except FileNotFoundError:
        raise HTTPException(404, f"the report has no {kind} list") from None
    except Exception as exc:  # noqa: BLE001 - the bucket's own error, without secrets
        from sharelift.errors import scrub

        raise HTTPException(502, f"cannot read the report: {scrub(str(exc))}") from None

    def chunks() -> Iterator[bytes]:
        try:
            while block := f.read(1024 * 1024):
                yield block
        finally:
            f.close()
            destination.close()

    return chunks()


@app.get("/", response_class=HTMLResponse)
def page(job: str | None = None) -> str:
    rows = runs_json(job)
    e = html.escape
    body = []
    for r in reversed(rows):
        done = r["copied"] + r["skipped"] + r["failed"]
        total = r["files_to_copy"] or 0
        progress = f"{done}/{total}" if total else str(done)
        base = f"runs/{e(r['job'])}/{e(r['run_id'])}"
        links = [f"<a href='{base}/{kind}_list.txt'>{kind}</a>" for kind in LIST_KINDS]
        body.append(
            f"<tr><td>{e(r['job'])}</td><td>{e(r['run_id'])}</td><td>{e(r['type'] or '')}"
            f" #{r['number']}</td>"
            f"<td><b>{e(r['state'])}</b>{'<br>' + e(r['cause']) if r['cause'] else ''}</td>"
            f"<td>{e(r['started_at'])}</td><td>{r['files_scanned'] or 0}</td><td>{progress}</td>"
            f"<td>{r['copied']} ({r['bytes_copied'] / 1e6:.1f} MB)</td><td>{r['skipped']}</td><td>{r['failed']}</td>"
            f"<td>{' · '.join(links)}"
            f"{'<br>' + e(r['report']) if r['report'] else ''}</td></tr>"
        )
    flows = []
    for job_name in sorted({r["job"] for r in rows}):
        f = flow_control_get(job_name)
        flows.append(
            f"<tr><td>{e(job_name)}</td><td><input id='fc-{e(job_name)}' size=40 "
            f"value='{e(f['setting'] or '')}' placeholder='08:00-18:00=10,18:00-08:00=50'></td>"
            f"<td>{e(f['timezone'] or 'UTC')}</td><td>{f['limit_now_mb_per_s'] or 'unthrottled'}</td>"
            f"<td>{f['running_subtasks']}</td><td><button onclick=\"setFc('{e(job_name)}')\">apply</button>"
            f"</td></tr>"
        )
    legend = "".join(
        f"<tr><td>{e(k)}</td><td>{e(v)}</td></tr>" for k, v in run_state_mapping().items()
    )
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>sharelift</title>
<meta http-equiv="refresh" content="10">
<style>body{{font-family:sans-serif;margin:1.5em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;font-size:13px;vertical-align:top}}th{{background:#eee}}</style>
</head><body><h1>sharelift: jobs and runs</h1>
<table><tr><th>job</th><th>run</th><th>type</th><th>state</th><th>started (UTC)</th><th>scanned</th>
<th>progress</th><th>copied</th><th>skipped</th><th>failed</th><th>lists / report</th></tr>
{"".join(body) or "<tr><td colspan=11>no runs yet</td></tr>"}</table>
<h2>Flow control (MB/s by time of day; applies to running jobs within a second)</h2>
<table><tr><th>job</th><th>setting</th><th>timezone</th><th>limit now</th><th>running subtasks</th><th></th></tr>
{"".join(flows)}</table>
<script>
async function setFc(job) {{
  const value = document.getElementById('fc-' + job).value;
  const r = await fetch('api/flow-control/' + encodeURIComponent(job), {{method: 'PUT',
    headers: {{'Content-Type': 'application/json'}}, body: JSON.stringify({{setting: value || null}})}});
  const body = await r.json();
  alert(r.ok ? 'flow control of ' + job + ': ' + (body.setting || 'unthrottled')
             : (body.detail && body.detail.message) || JSON.stringify(body));
  location.reload();
}}
</script>
<h2>States</h2><table><tr><th>sharelift</th><th>in Airflow</th></tr>{legend}</table>
</body></html>"""
