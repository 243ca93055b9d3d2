"""Reload the code location when the definitions on disk differ from the loaded ones.

A run started by the definitions sensor records the new code_version of an edited audience,
while the UI still shows the loaded (old) one: the asset would read "Unsynced - has a new code
version" until someone pressed Reload. With AUDIENCE_PIPELINE_DAGSTER_URL set (scripts/demo.sh
sets it to the local `dagster dev`), the sensor asks the webserver to reload first, and starts
the run from the reloaded code on a later tick.
"""

from __future__ import annotations

import logging
import os
import threading
import time

import httpx

log = logging.getLogger(__name__)

URL_ENV = "AUDIENCE_PIPELINE_DAGSTER_URL"
LOCATION_ENV = "AUDIENCE_PIPELINE_CODE_LOCATION"
DEFAULT_LOCATION = "audience_pipeline"  # workspace.yaml's location_name
# If the reload has not replaced this process after this long, run from the loaded code anyway.
GIVE_UP_SECONDS = 120.0

MUTATION = """mutation Reload($name: String!) {
  reloadRepositoryLocation(repositoryLocationName: $name) { __typename }
}"""

_requested_at: float | None = None


def webserver_url() -> str | None:
    return os.environ.get(URL_ENV) or None


def request_reload() -> bool:
    """Ask for a reload (in the background: the reload replaces the process asking for it).

    Returns True while the sensor should wait for the reloaded code; False when no webserver is
    configured or an earlier request did not take effect in time (run from the loaded code)."""
    global _requested_at
    url = webserver_url()
    if url is None:
        return False
    now = time.monotonic()
    if _requested_at is not None:
        return now - _requested_at < GIVE_UP_SECONDS
    _requested_at = now
    name = os.environ.get(LOCATION_ENV, DEFAULT_LOCATION)
    threading.Thread(target=_post, args=(url, name), name="reload-location", daemon=True).start()
    return True


def _post(url: str, name: str) -> None:
    try:
        httpx.post(
            f"{url.rstrip('/')}/graphql",
            json={"query": MUTATION, "variables": {"name": name}},
            timeout=120,
        )
    except httpx.HTTPError as error:  # the process may be replaced mid-request: expected
        log.info("code location reload request: %s", error)


__all__ = ["URL_ENV", "request_reload", "webserver_url"]
