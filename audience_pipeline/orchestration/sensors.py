"""Sensors: new landing files, changed definitions (and schedules in schedules.py)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import orjson

from audience_pipeline.incremental import definition_hash, space_fingerprint
from audience_pipeline.membership.registry import Registry
from audience_pipeline.orchestration import warehouse as wh
from audience_pipeline.orchestration.checks import DEFINITIONS_CHECK
from audience_pipeline.orchestration.reload import request_reload
from audience_pipeline.orchestration.resources import AS_OF_TAG, PipelineSettings
from audience_pipeline.spec.issues import Issue
from audience_pipeline.spec.loader import load_definitions

# Destinations sync on their own sensor (reverse_etl), not as part of a recompute.
DOWNSTREAM_GROUPS = ("profiles", "computed_traits", "audiences", "memberships")


def _now_tag() -> dict[str, str]:
    return {AS_OF_TAG: datetime.now(UTC).replace(microsecond=0).isoformat()}


def recompute_selection() -> dg.AssetSelection:
    """Every unpartitioned asset: the engine and all it feeds."""
    return dg.AssetSelection.groups(*DOWNSTREAM_GROUPS)


def landing_sensor(settings: PipelineSettings) -> dg.SensorDefinition:
    """New or changed files in the landing folder: ingest their days, then recompute.

    The cursor maps each seen file to its size and mtime. One run per day touched ingests that
    day's partition; the last one also runs the engine (incrementally) and everything
    downstream. The run queue runs them in order, one at a time.
    """

    @dg.sensor(
        name="landing_files",
        # Freshness: a file is picked up within ~10 s (a tick only lists and stats files).
        minimum_interval_seconds=10,
        default_status=dg.DefaultSensorStatus.RUNNING,
        asset_selection=dg.AssetSelection.groups("ingest") | recompute_selection(),
    )
    def _sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        seen: dict[str, str] = orjson.loads(context.cursor) if context.cursor else {}
        landing = settings.landing
        current = {str(p): wh.file_stamp(p) for p in wh.landing_files(landing)}
        ingested = wh.ingested_files(settings.warehouse)
        fresh = sorted(
            p for p, stamp in current.items() if stamp not in (seen.get(p), ingested.get(p))
        )
        if not fresh:
            return dg.SkipReason(f"no new files in {landing}")
        days = sorted({wh.partition_of(Path(p), landing) for p in fresh})
        token = hashlib.sha256("".join(f"{p}={current[p]}" for p in fresh).encode()).hexdigest()[
            :12
        ]
        tags = _now_tag()
        requests = []
        for day in days:
            selection: dg.AssetSelection = dg.AssetSelection.groups("ingest")
            if day == days[-1]:
                selection = selection | recompute_selection()
            requests.append(
                dg.RunRequest(
                    run_key=f"landing-{day}-{token}",
                    partition_key=day,
                    asset_selection=list(_keys(context, selection)),
                    tags=tags,
                )
            )
        return dg.SensorResult(run_requests=requests, cursor=orjson.dumps(current).decode())

    return _sensor


# Recomputed on every definitions change: the engine's tables (one fused pass computes every
# audience) and the history and snapshots that follow memberships.
ENGINE_AND_HISTORY = (
    "identities", "user_traits", "custom_traits", "account_traits", "memberships",
    "account_user_memberships", "membership_changes", "membership_history",
    "membership_snapshots",
)  # fmt: skip


def dependents_selection(changed: list[str]) -> dg.AssetSelection:
    """What a change of these definitions (`trait/KEY`, `audience/KEY`, `space`) can change: the
    engine and history, the changed traits' and audiences' own assets and what depends on them.
    Other audiences' views keep their materialization (their code_version did not move)."""
    if "space" in changed:
        return recompute_selection()
    kinds = {"trait": "traits", "audience": "audiences"}
    own = [
        dg.AssetKey([kinds[kind], key])
        for kind, _, key in (item.partition("/") for item in changed)
        if kind in kinds
    ]
    selection: dg.AssetSelection = dg.AssetSelection.assets(*ENGINE_AND_HISTORY)
    if own:
        # A key that is not in the loaded graph yet (a new file) has no asset to run.
        selection = selection | dg.AssetSelection.assets(*own).downstream()
    return selection


def _keys(context: dg.SensorEvaluationContext, selection: dg.AssetSelection) -> set[dg.AssetKey]:
    repository = context.repository_def
    if repository is None:  # built outside a repository (tests): the selection's own keys
        msg = "the sensor needs its repository to resolve an asset selection"
        raise RuntimeError(msg)
    return set(selection.resolve(repository.asset_graph, allow_missing=True))


def definitions_state(definitions_dir: str) -> dict[str, str]:
    """kind/key -> hash of every trait and audience definition, plus the space file."""
    definitions, _ = load_definitions(definitions_dir)
    state = {f"trait/{t.key}": definition_hash(t.raw) for t in definitions.traits}
    state |= {f"audience/{a.key}": definition_hash(a.raw) for a in definitions.audiences}
    state["space"] = space_fingerprint(definitions.space)
    return state


def definitions_sensor(
    settings: PipelineSettings, loaded: dict[str, str] | None = None
) -> dg.SensorDefinition:
    """A definition added, edited or deleted: recompute that audience and what depends on it.

    The engine always recomputes every audience in one pass (a new audience backfills from all
    events; an edit is a new version). A deleted key is tombstoned by the run's commit; a
    tombstoned key defined again is refused here and by the engine.

    `loaded`: the definitions_state the code location was built from. When the files differ
    from it and a webserver is known (orchestration/reload.py), the code location is reloaded
    first, so the run's code versions are the ones the UI shows.
    """

    @dg.sensor(
        name="definitions_changed",
        minimum_interval_seconds=15,
        default_status=dg.DefaultSensorStatus.RUNNING,
        asset_selection=recompute_selection(),
    )
    def _sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        definitions, issues = load_definitions(settings.definitions_dir)
        if issues:
            return dg.SensorResult(run_requests=[_check_request(issues)])
        changes = Registry.of_warehouse(settings.warehouse).diff(definitions)
        if changes.reused:
            return dg.SkipReason(
                "refused: deleted audience keys cannot be reused: " + ", ".join(changes.reused)
            )
        state = definitions_state(settings.definitions_dir)
        previous: dict[str, str] = orjson.loads(context.cursor) if context.cursor else {}
        if loaded is not None and state != loaded and state != previous and request_reload():
            return dg.SkipReason(
                "definitions changed on disk: reloading the code location; the recompute "
                "starts from the reloaded code"
            )
        cursor = orjson.dumps(state, option=orjson.OPT_SORT_KEYS).decode()
        if not context.cursor:
            # First evaluation: remember what exists; only audiences never computed need a run.
            if not changes.added:
                return dg.SensorResult(
                    skip_reason=dg.SkipReason("baseline recorded"), cursor=cursor
                )
        elif previous == state:
            return dg.SkipReason("definitions unchanged")
        request = _recompute_request(context, state, previous, changes.added, cursor)
        return dg.SensorResult(run_requests=[request], cursor=cursor)

    return _sensor


def _check_request(issues: list[Issue]) -> dg.RunRequest:
    """Invalid definitions, shown in the UI and not only in a tick's log: run the
    definitions_valid check once per distinct set of problems (it fails, listing each with
    file, key and field)."""
    text = "\n".join(str(i) for i in issues)
    return dg.RunRequest(
        run_key=f"invalid-{hashlib.sha256(text.encode()).hexdigest()[:12]}",
        asset_selection=[],
        asset_check_keys=[DEFINITIONS_CHECK],
        tags={"audience_pipeline/invalid": str(issues[0])[:200]},
    )


def _recompute_request(
    context: dg.SensorEvaluationContext,
    state: dict[str, str],
    previous: dict[str, str],
    added_keys: list[str],
    cursor: str,
) -> dg.RunRequest:
    """Recompute what the changed definitions (and audiences never computed) reach."""
    changed = sorted(k for k in state.keys() | previous.keys() if state.get(k) != previous.get(k))
    added = [f"audience/{k}" for k in added_keys]
    description = ", ".join(changed) or ", ".join(added)
    return dg.RunRequest(
        run_key=f"definitions-{hashlib.sha256(cursor.encode()).hexdigest()[:12]}",
        asset_selection=list(_keys(context, dependents_selection([*changed, *added]))),
        tags={**_now_tag(), "audience_pipeline/changed": description[:200]},
    )
