"""Sensors: the inference folder starts scoring runs without a human."""

import json

import dagster as dg

from mlops_assets import inference_folder
from mlops_assets.defs.jobs import batch_job
from mlops_assets.defs.partitions import inference_batches
from mlops_assets.settings import PipelineSettings


def _folder_decisions(cursor: dict, files: list, already_scored: set[str]) -> tuple[list, dict]:
    """Which files to score now, and the next cursor.

    A file is requested once its signature (name, size, mtime) was the same at the previous tick:
    a file still being copied keeps changing and waits. `seen` maps file name -> the signature
    that was scored, so the same file is scored once and a replaced file again.
    """
    first_tick = "seen" not in cursor
    seen: dict[str, str] = dict(cursor.get("seen", {}))
    pending: dict[str, str] = cursor.get("pending", {})
    ready, observed = [], {}
    for path in files:
        try:
            signature = inference_folder.signature(path)
        except FileNotFoundError:  # moved away between listing and stat
            continue
        if first_tick and inference_folder.batch_key(path) in already_scored:
            seen[path.name] = signature  # history from before this sensor ran: not rescored unless asked
            continue
        if seen.get(path.name) == signature:
            continue
        if pending.get(path.name) == signature:
            ready.append((path, signature))
            seen[path.name] = signature
        else:
            observed[path.name] = signature
    return ready, {"seen": seen, "pending": observed}


@dg.sensor(
    job=batch_job,
    minimum_interval_seconds=3,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Scores each new or replaced CSV in the inference folder once its size and mtime are stable.",
)
def inference_folder_sensor(context: dg.SensorEvaluationContext, settings: PipelineSettings) -> dg.SensorResult:
    cursor = json.loads(context.cursor) if context.cursor else {}
    already_scored: set[str] = set()
    if "seen" not in cursor:
        already_scored = set(context.instance.get_materialized_partitions(dg.AssetKey("predictions")))
    files = inference_folder.candidate_files(settings.inference_dir)
    ready, next_cursor = _folder_decisions(cursor, files, already_scored)
    known = set(context.instance.get_dynamic_partitions(inference_batches.name))
    new_keys = sorted({inference_folder.batch_key(p) for p, _ in ready} - known)
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=signature,
                partition_key=inference_folder.batch_key(path),
                tags={"source_file": path.name},
            )
            for path, signature in ready
        ],
        dynamic_partitions_requests=[inference_batches.build_add_request(new_keys)] if new_keys else [],
        cursor=json.dumps(next_cursor),
        skip_reason=None if ready else f"no new stable CSV in {settings.inference_dir}",
    )
