"""The daily recompute, at the time and timezone set in space.yaml."""

from __future__ import annotations

import dagster as dg

from audience_pipeline.orchestration.resources import AS_OF_TAG
from audience_pipeline.orchestration.sensors import recompute_selection
from audience_pipeline.spec.models import SpaceConfig

recompute_job = dg.define_asset_job("recompute_all", selection=recompute_selection())


def daily_schedule(space: SpaceConfig) -> dg.ScheduleDefinition:
    """Recompute everything as of the tick's scheduled time (SpaceConfig.schedule/timezone)."""

    @dg.schedule(
        name="daily_recompute",
        cron_schedule=space.schedule,
        execution_timezone=space.timezone,
        job=recompute_job,
        default_status=dg.DefaultScheduleStatus.RUNNING,
    )
    def _schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        scheduled = context.scheduled_execution_time
        return dg.RunRequest(tags={AS_OF_TAG: scheduled.isoformat()})

    return _schedule
