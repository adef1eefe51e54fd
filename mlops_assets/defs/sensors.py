"""Sensors: the inference folder starts scoring runs, and drift starts retraining, without a human."""

import contextlib
import dataclasses
import itertools
import json
import time

import dagster as dg
from dagster._core.storage.dagster_run import IN_PROGRESS_RUN_STATUSES

from mlops_assets import folder_watch, inference_folder, run_retries
from mlops_assets.batch_files import BatchNameError, batch_key, batch_path
from mlops_assets.defs.jobs import batch_job, labels_job, training_job
from mlops_assets.defs.partitions import inference_batches
from mlops_assets.settings import PipelineSettings

RETRAIN_BATCH_TAG = "mlops/retrain_for_batch"
"""On a retraining run: the drifted batch it was started for (rescored if the challenger wins)."""
RESCORED_BY_TAG = "mlops/rescored_by_model_version"
"""On a rescoring run: the promoted model version that rescored the batch."""
EACH_DAEMON_PASS = 1
"""`minimum_interval_seconds` of a sensor evaluated at every pass of Dagster's sensor daemon, which
passes every 5 s (fixed in Dagster). An interval of exactly 5 s skipped every other pass, because an
evaluation that starts a little sooner after the last one than 5 s is too early: the retrain and
labels sensors ticked every 10 s (measured on a `make dev` session's tick history)."""
LOOK_AGAIN_SECONDS = 0.25
"""How often a sensor evaluation that is waiting lists its folder, or reads the instance, again."""


def _batch_files(context: dg.SensorEvaluationContext, folder) -> list:
    """The files waiting in `folder` whose names are batch names; any other is set aside in
    `rejected/` with the reason, and the sensor goes on with the rest."""
    files = []
    for path in inference_folder.candidate_files(folder):
        try:
            batch_key(path)
        except BatchNameError as exc:
            inference_folder.reject(path, str(exc))
            context.log.warning(f"{exc}; moved to {folder / inference_folder.REJECTED}")
            continue
        files.append(path)
    return files


def _folder_decisions(
    cursor: dict, files: list, already_scored: set[str], settle_seconds: float, renamed_in: set[str] = frozenset()
) -> tuple[list, dict]:
    """Which files to score now, and the next cursor.

    A file is requested once its signature (name, size, mtime) was the same at the previous tick,
    or at first sight when it was renamed into place after its last write (an atomic drop: seen by
    its change time, or in `renamed_in` while the sensor watched) or has not been written for
    `settle_seconds` (a copy that finished a while ago): a file still being copied keeps changing
    and waits. `seen` maps file name -> the signature that was scored, so the same file is scored
    once and a replaced file again.
    """
    first_tick = "seen" not in cursor
    seen: dict[str, str] = dict(cursor.get("seen", {}))
    pending: dict[str, str] = cursor.get("pending", {})
    ready, observed = [], {}
    for path in files:
        try:
            signature = inference_folder.signature(path)
            settled = path.name in renamed_in or inference_folder.finished_writing(path, settle_seconds)
        except FileNotFoundError:  # moved away between listing and stat
            continue
        if first_tick and batch_key(path) in already_scored:
            seen[path.name] = signature  # history from before this sensor ran: not rescored unless asked
            continue
        if seen.get(path.name) == signature:
            continue
        if pending.get(path.name) == signature or settled:
            ready.append((path, signature))
            seen[path.name] = signature
        else:
            observed[path.name] = signature
    return ready, {"seen": seen, "pending": observed}


def _settled_decisions(
    context: dg.SensorEvaluationContext, folder, cursor: dict, already_scored: set[str], settle_seconds: float,
    listen_seconds: float = 0.0,
) -> tuple[list, dict]:
    """`_folder_decisions` on `folder`, looking again within this evaluation until a file is ready
    or, at most, until the files found too young are `settle_seconds` old and `listen_seconds` have
    passed; a file renamed into the folder meanwhile is ready at once.

    A complete file then waits for the settle time instead of the next tick 5 s later: a plain copy
    that has finished, and an atomic drop whose rename landed on the clock tick of its last write
    (the kernel's coarse timestamps make the two equal; about half of `cp` + `mv` drops measured). A
    file still being written changes meanwhile and waits for a later tick, as before. Listening, a
    file dropped during the evaluation is requested at once rather than at the next tick.
    """
    with folder_watch.RenamesInto(folder) as renames:
        listen_until = time.monotonic() + listen_seconds
        files = _batch_files(context, folder)
        ready, next_cursor = _folder_decisions(cursor, files, already_scored, settle_seconds, renames.names)
        waits = [0.0]
        for path in files:
            if path.name in next_cursor["pending"]:
                with contextlib.suppress(FileNotFoundError):  # moved away meanwhile
                    waits.append(inference_folder.seconds_until_settled(path, settle_seconds))
        deadline = max(listen_until, time.monotonic() + max(waits))
        while not ready and time.monotonic() < deadline:
            renames.wait(min(LOOK_AGAIN_SECONDS, max(0.0, deadline - time.monotonic())))
            files = _batch_files(context, folder)
            ready, next_cursor = _folder_decisions(cursor, files, already_scored, settle_seconds, renames.names)
    return ready, next_cursor


@dg.sensor(
    job=batch_job,
    minimum_interval_seconds=EACH_DAEMON_PASS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Scores each new or replaced CSV in the inference folder once it is complete: renamed into place "
    "after its last write, or not written for file_settle_seconds (a tick that sees a younger file waits until then "
    "and looks again), or unchanged since the previous tick. A tick that finds nothing to score watches the folder "
    "for sensor_listen_seconds, so a file dropped meanwhile is requested at once.",
)
def inference_folder_sensor(context: dg.SensorEvaluationContext, settings: PipelineSettings) -> dg.SensorResult:
    cursor = json.loads(context.cursor) if context.cursor else {}
    already_scored: set[str] = set()
    if "seen" not in cursor:
        already_scored = set(context.instance.get_materialized_partitions(dg.AssetKey("predictions")))
    ready, next_cursor = _settled_decisions(
        context, settings.inference_dir, cursor, already_scored, settings.file_settle_seconds, settings.sensor_listen_seconds
    )
    known = set(context.instance.get_dynamic_partitions(inference_batches.name))
    new_keys = sorted({batch_key(p) for p, _ in ready} - known)
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=signature,
                partition_key=batch_key(path),
                tags={"source_file": path.name},
            )
            for path, signature in ready
        ],
        dynamic_partitions_requests=[inference_batches.build_add_request(new_keys)] if new_keys else [],
        cursor=json.dumps(next_cursor),
        skip_reason=None if ready else f"no new stable CSV in {settings.inference_dir}",
    )


@dg.sensor(
    job=labels_job,
    minimum_interval_seconds=EACH_DAEMON_PASS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Stores each new or replaced labels file in data/raw/labels/ (<batch>.csv: key_value,target) for its "
    "scored batch and judges the batch again with them; a file for no known batch is set aside with the reason.",
)
def labels_sensor(context: dg.SensorEvaluationContext, settings: PipelineSettings) -> dg.SensorResult:
    cursor = json.loads(context.cursor) if context.cursor else {"seen": {}}
    ready, next_cursor = _settled_decisions(context, settings.labels_dir, cursor, set(), settings.file_settle_seconds)
    scored = set(context.instance.get_materialized_partitions(dg.AssetKey("predictions")))
    requests, waiting = [], []
    for path, signature in ready:
        batch = batch_key(path)
        if batch in scored:
            requests.append(
                dg.RunRequest(job_name=labels_job.name, run_key=f"labels-{signature}", partition_key=batch, tags={"labels_file": path.name})
            )
        elif batch_path(settings.inference_dir, batch).is_file():
            waiting.append(path.name)  # its batch is still being scored: look again next tick
            next_cursor["seen"].pop(path.name, None)
        else:
            inference_folder.reject(
                path, f"no scored batch named {batch}: name a labels file after the batch it belongs to (<batch>.csv)"
            )
            context.log.warning(f"{path.name}: no scored batch named {batch}; moved to {settings.labels_dir / 'rejected'}")
    return dg.SensorResult(
        run_requests=requests,
        cursor=json.dumps(next_cursor),
        skip_reason=None if requests else (
            f"waiting for {', '.join(waiting)} to be scored" if waiting else f"no new labels file in {settings.labels_dir}"
        ),
    )


def _new_materializations(instance: dg.DagsterInstance, asset: str, after: int | None) -> list:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), after_storage_id=after), limit=100, ascending=True
    ).records
    return list(records)


def _run_finished(instance: dg.DagsterInstance, run_id: str) -> bool:
    run = instance.get_run_by_id(run_id)
    return run is None or run.is_finished


def _metadata(record) -> dict:
    return {k: v.value for k, v in record.asset_materialization.metadata.items()}


@dataclasses.dataclass
class _RetrainDecision:
    requests: list
    cursor: dict
    skip_reason: str
    in_flight: bool
    """A drift report waits for its run, or (looked up only when nothing is requested) a retraining
    run is under way: a request may come soon."""
    notes: list


def _retrain_decision(instance: dg.DagsterInstance, cursor: dict) -> _RetrainDecision:
    """What the retrain sensor requests from `cursor` on, read from the instance alone (so a tick can
    ask again while it listens): retrainings for judged batches, rescorings for promotions."""
    requests, notes = [], []
    drift_records = _new_materializations(instance, "drift_report", cursor.get("drift_report"))
    # A report is acted on once the run that wrote it has finished, so the retraining fit does not
    # overlap that run's evidently report step: together (with dagster dev) they would pass 4 GiB at
    # twice the full scale.
    finished = list(itertools.takewhile(lambda record: _run_finished(instance, record.run_id), drift_records))
    for record in finished:
        metadata, batch = _metadata(record), record.partition_key
        if metadata.get("retraining_due") and metadata.get("retraining_possible"):
            requests.append(
                dg.RunRequest(
                    job_name=training_job.name,
                    run_key=f"retrain-{batch}-{str(metadata.get('labeled_data_sha256'))[:16]}",
                    run_config={"ops": {"raw_training": {"config": {"admit_batch": batch}}}},
                    tags={RETRAIN_BATCH_TAG: batch},
                )
            )
        elif metadata.get("retraining_due"):
            notes.append(f"{batch}: {metadata.get('retraining')}")
    champion_records = _new_materializations(instance, "champion", cursor.get("champion"))
    for record in champion_records:
        run = instance.get_run_by_id(record.run_id)
        batch = run.tags.get(RETRAIN_BATCH_TAG) if run else None
        metadata = _metadata(record)
        if batch:
            requests.append(
                dg.RunRequest(
                    job_name=batch_job.name,
                    run_key=f"rescore-{batch}-v{metadata['model_version']}",
                    partition_key=batch,
                    tags={RESCORED_BY_TAG: str(metadata["model_version"])},
                )
            )
    waiting = len(finished) < len(drift_records)
    # only asked when it decides whether the tick keeps listening
    retraining = not (waiting or requests) and any(
        RETRAIN_BATCH_TAG in run.tags
        for run in instance.get_runs(dg.RunsFilter(job_name=training_job.name, statuses=IN_PROGRESS_RUN_STATUSES), limit=10)
    )
    return _RetrainDecision(
        requests=requests,
        cursor={
            "drift_report": finished[-1].storage_id if finished else cursor.get("drift_report"),
            "champion": champion_records[-1].storage_id if champion_records else cursor.get("champion"),
        },
        skip_reason="a drift report waits for its run to finish" if waiting else "no drift report or promotion that calls for a run",
        in_flight=waiting or retraining,
        notes=notes,
    )


@dg.sensor(
    jobs=[training_job, batch_job],
    minimum_interval_seconds=EACH_DAEMON_PASS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="On each drift_report, once the run that wrote it has finished: when retraining is due and the batch "
    "has labels, one retraining run per "
    "labeled content of the batch (new labels, a new file: a new run); when that run's champion is promoted, the "
    "batch is rescored by it. While a judged batch's run or a retraining run is still going, a tick keeps looking "
    "for sensor_listen_seconds, so the next run is requested as soon as it may start.",
)
def drift_retrain_sensor(context: dg.SensorEvaluationContext, settings: PipelineSettings) -> dg.SensorResult:
    cursor = json.loads(context.cursor) if context.cursor else {}
    listen_until = time.monotonic() + settings.sensor_listen_seconds
    decision = _retrain_decision(context.instance, cursor)
    while not decision.requests and decision.in_flight and time.monotonic() < listen_until:
        time.sleep(LOOK_AGAIN_SECONDS)
        decision = _retrain_decision(context.instance, cursor)
    for note in decision.notes:
        context.log.info(note)
    return dg.SensorResult(
        run_requests=decision.requests,
        cursor=json.dumps(decision.cursor),
        skip_reason=None if decision.requests else decision.skip_reason,
    )


@dg.sensor(
    jobs=[training_job, batch_job, labels_job],
    minimum_interval_seconds=15,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Starts again, once, a run whose worker died and that Dagster's run-retry daemon said it would "
    "retry but did not (it can read the failure before the run is marked failed): see mlops_assets/run_retries.py.",
)
def missed_retry_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    missed = run_retries.missed_retries(context.instance, time.time())
    for run in missed:
        context.log.warning(f"run {run.run_id} ({run.job_name}) failed, was to be retried and was not: starting it again")
    return dg.SensorResult(
        run_requests=[run_retries.retry_request(run) for run in missed],
        skip_reason=None if missed else "no failed run waiting for a retry that Dagster missed",
    )
