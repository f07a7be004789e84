"""Registers the sharelift page (jobs, runs, progress, reports) in the Airflow UI, and the
listener that imports the tasks' modules into the components their processes are forked
from (``sharelift.airflow.preload``)."""

from airflow.plugins_manager import AirflowPlugin

from sharelift.airflow import preload
from sharelift.airflow.ui import app


class SharelIftPlugin(AirflowPlugin):
    name = "sharelift"
    fastapi_apps = [{"app": app, "url_prefix": "/sharelift", "name": "sharelift"}]
    external_views = [
        {"name": "sharelift", "href": "/sharelift/", "destination": "nav", "url_route": "sharelift"}
    ]
    listeners = [preload]
