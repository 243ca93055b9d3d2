"""Reload: tables rewritten while requests run; every response comes from one generation.

Two runs A and B of the demo (as-of 3 days apart, so traits, audiences and even the set of
profiles differ) are published into one warehouse folder again and again, file by file with
pauses (as a writer would: every file into a new run folder, then the commit), while
client threads keep asking for traits. Each response names the run it came from (X-As-Of), and
its body must equal that run's tables exactly; a response mixing two runs would not.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from audience_pipeline.warehouse import begin_run, open_run
from audience_pipeline.warehouse.layout import NORMALIZED_INPUTS
from audience_pipeline.warehouse.snapshot import SERVED_TABLES
from tests.api.support import AS_OF, TOKEN, Expected, basic, compute, profile_path, start_server

AS_OF_B = AS_OF - timedelta(days=3)
ISO = {AS_OF: "2026-03-01T00:00:00Z", AS_OF_B: "2026-02-26T00:00:00Z"}


def _publish(source: Path, target: Path, pause: float) -> None:
    """Write one run into `target` the way compute does: file by file into a new run folder
    (with pauses, so reloads race the writes), then commit."""
    run = open_run(source)
    assert run is not None and run.as_of is not None
    with begin_run(target, as_of=run.as_of) as writer:
        for relative in [*(f"{n}.parquet" for n in SERVED_TABLES), *NORMALIZED_INPUTS.values()]:
            (writer.folder / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(run.file(relative), writer.folder / relative)
            time.sleep(pause)
        writer.commit(as_of=run.as_of, layout=run.layout, json_columns=run.json_columns)


@pytest.fixture(scope="module")
def runs(demo: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("reload")
    compute(demo / "events", root / "b", AS_OF_B)
    return {ISO[AS_OF]: demo / "warehouse", ISO[AS_OF_B]: root / "b"}


def _served(seen: Counter[tuple[str, str]], stamp: str) -> set[str]:
    """The generations that served `stamp` so far (list() copies the keys atomically while the
    reader threads add to the counter)."""
    return {g for s, g in list(seen) if s == stamp}


def test_each_response_comes_from_one_run(runs: dict[str, Path], tmp_path: Path) -> None:
    live = tmp_path / "live"
    _publish(runs[ISO[AS_OF]], live, pause=0)
    want = {stamp: Expected(path) for stamp, path in runs.items()}
    a, b = want[ISO[AS_OF]], want[ISO[AS_OF_B]]
    both = set(a.users["profile_id"]) & set(b.users["profile_id"])
    changed = sorted(p for p in both if a.traits("user", p) != b.traits("user", p))
    only_a = sorted(set(a.users["profile_id"]) - set(b.users["profile_id"]))
    assert len(changed) >= 10 and only_a
    profiles = changed[:20] + only_a[:5]
    server = start_server(live, tmp_path / "server.log", poll=0.05)
    stop = threading.Event()
    seen: Counter[tuple[str, str]] = Counter()
    failures: list[str] = []

    def reader(seed: int) -> None:
        with httpx.Client(base_url=server.url, headers={"Authorization": basic(TOKEN)}) as client:
            i = seed
            while not stop.is_set():
                profile = profiles[i % len(profiles)]
                i += 1
                response = client.get(profile_path(f"profile_id:{profile}", "traits"),
                                      params={"limit": 200})  # fmt: skip
                stamp = response.headers.get("x-as-of", "")
                generation = response.headers.get("x-generation", "")
                seen[(stamp, generation)] += 1
                expected = want.get(stamp)
                if expected is None:
                    failures.append(f"unknown run {stamp!r}: {response.text[:200]}")
                    continue
                if profile in set(expected.users["profile_id"]):
                    if response.status_code != 200 or response.json()["traits"] != expected.traits(
                        "user", profile
                    ):
                        failures.append(f"{profile} in {stamp}: {response.text[:300]}")
                elif response.status_code != 404:
                    failures.append(
                        f"{profile} should not exist in {stamp}: {response.status_code}"
                    )

    threads = [threading.Thread(target=reader, args=(k,)) for k in range(3)]
    try:
        for thread in threads:
            thread.start()
        # Gaps after each publish vary, so that some reloads start while the next run's files
        # are already being written.
        for k, source in enumerate([runs[ISO[AS_OF_B]], runs[ISO[AS_OF]]] * 8):
            _publish(source, live, pause=0.02)
            time.sleep([0.0, 0.03, 0.06, 0.3][k % 4])
        # On a loaded machine the racing publishes above may all be superseded before the server
        # loads one; then publish calmly and wait for each run to be served, so the swaps below
        # are certain whatever the load.
        for stamp in [ISO[AS_OF_B], ISO[AS_OF], ISO[AS_OF_B], ISO[AS_OF]]:
            before = _served(seen, stamp)
            _publish(runs[stamp], live, pause=0)
            deadline = time.time() + 60
            while time.time() < deadline and not (_served(seen, stamp) - before):
                time.sleep(0.05)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        server.stop()
    assert not failures, failures[:5]
    stamps = {s for s, _ in seen}
    generations = {g for _, g in seen}
    assert stamps == set(ISO.values())  # both runs were served
    assert len(generations) >= 4  # and swapped in several times
