"""The Beacon page in the Airflow UI (Airflow 3 plugin): a FastAPI app at /beacon, linked from the navigation.

Thin on purpose: the app, its access rules and the data live in include/beacon/ui/.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from beacon.ui.app import create_app


class BeaconPagePlugin(AirflowPlugin):
    name = "beacon_page"
    fastapi_apps = [{"app": create_app(), "url_prefix": "/beacon", "name": "Beacon"}]
    # Shown inside the Airflow UI (an iframe at /plugin/beacon); href is relative to the UI's base URL.
    external_views = [{"name": "Beacon", "href": "beacon/", "destination": "nav", "url_route": "beacon"}]
