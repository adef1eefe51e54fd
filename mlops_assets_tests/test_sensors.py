"""The inference-folder sensor, and when the retrain sensor acts, evaluated with Dagster's own test
utilities and a real instance."""

import json
import os
import shutil
import threading
import time

import dagster as dg
import pytest
from dagster._core.events import DagsterEvent, DagsterEventType, StepMaterializationData
from dagster._core.test_utils import create_run_for_test

from mlops_assets.defs.sensors import RETRAIN_BATCH_TAG, drift_retrain_sensor, inference_folder_sensor
from mlops_assets_tests.conftest import make_settings
from mlops_assets_tests.dagster_dev import wait_for


@pytest.fixture
def instance():
    with dg.instance_for_test() as test_instance:
        yield test_instance


@pytest.fixture
def folder(tmp_path):
    # the ticks that wait for a file stay short; one look per tick unless a test listens
    settings = make_settings(tmp_path / "data", file_settle_seconds=1.0, sensor_listen_seconds=0.0)
    settings.inference_dir.mkdir(parents=True)
    return settings


def tick(instance, settings, cursor):
    """One sensor evaluation; returns (run requests, new cursor, partitions added)."""
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"settings": settings})
    result = inference_folder_sensor(context)
    added = [k for r in result.dynamic_partitions_requests for k in r.partition_keys]
    if added:
        instance.add_dynamic_partitions("inference_batches", added)
    return result.run_requests or [], result.cursor, added


def drop(settings, name, rows="a,b\n1,2\n"):
    path = settings.inference_dir / name
    path.write_text(rows)
    return path


def test_a_new_file_is_requested_once_in_the_tick_that_sees_it_settle(instance, folder):
    path = drop(folder, "p5_extrac.csv")
    requests, cursor, added = tick(instance, folder, None)
    # not at first sight: the tick looked again once the file had been left alone for the settle time
    assert time.time() - path.stat().st_mtime >= folder.file_settle_seconds
    assert [(r.partition_key, r.tags["source_file"]) for r in requests] == [("p5_extrac", "p5_extrac.csv")]
    assert added == ["p5_extrac"]
    assert requests[0].run_key.startswith("p5_extrac.csv:")
    requests, cursor, _ = tick(instance, folder, cursor)
    assert requests == []  # the same file is not scored twice
    assert "p5_extrac.csv" in json.loads(cursor)["seen"]


def test_a_file_settled_before_first_sight_is_requested_at_once(instance, folder):
    path = drop(folder, "p5_extrac.csv")
    settled = path.stat().st_mtime_ns - int((folder.file_settle_seconds + 1) * 1e9)  # e.g. renamed in after a copy
    os.utime(path, ns=(settled, settled))
    requests, cursor, added = tick(instance, folder, None)
    assert [r.partition_key for r in requests] == ["p5_extrac"] and added == ["p5_extrac"]
    assert tick(instance, folder, cursor)[0] == []


def test_an_atomic_drop_is_requested_at_first_sight(instance, folder):
    staged = drop(folder, ".p5_extrac.csv.tmp")
    time.sleep(0.05)  # the rename lands on a later clock tick than the last write
    os.replace(staged, folder.inference_dir / "p5_extrac.csv")
    requests, cursor, _ = tick(instance, folder, None)
    assert [r.partition_key for r in requests] == ["p5_extrac"]
    assert tick(instance, folder, cursor)[0] == []


def test_a_tick_that_finds_nothing_listens_and_requests_a_file_renamed_in_meanwhile(instance, folder):
    # a settle time no test waits for: only seeing the rename can make the file ready in time
    listening = make_settings(folder.data_dir, file_settle_seconds=600.0, sensor_listen_seconds=30.0)

    def atomic_drop():
        time.sleep(1.0)  # after the tick's first look
        staged = drop(listening, ".p5_extrac.csv.tmp")
        # stamped as if written after the rename: its change time cannot tell the rename, as when
        # both land on one tick of the kernel's coarse clock (about half of `cp` + `mv` drops)
        later = time.time_ns() + 10**9
        os.utime(staged, ns=(later, later))
        os.replace(staged, listening.inference_dir / "p5_extrac.csv")

    dropper = threading.Thread(target=atomic_drop)
    started = time.monotonic()
    dropper.start()
    try:
        requests, cursor, added = tick(instance, listening, None)
    finally:
        dropper.join()
    assert [r.partition_key for r in requests] == ["p5_extrac"] and added == ["p5_extrac"]
    assert time.monotonic() - started < 30.0, "the tick returned once the file was there, not at the end of its window"
    assert tick(instance, folder, cursor)[0] == []


def test_a_file_still_being_written_waits(instance, folder):
    path = drop(folder, "p6_extrac.csv", "a,b\n")
    stop = threading.Event()

    def keep_writing():  # a slow copy: a few bytes every 0.1 s
        with open(path, "a") as handle:
            while not stop.wait(0.1):
                handle.write("1,2\n")
                handle.flush()

    writer = threading.Thread(target=keep_writing)
    writer.start()
    try:
        requests, cursor, _ = tick(instance, folder, None)
        assert requests == []
        # the next tick comes once the copy has written again, as it would 5 s later under the daemon
        # (back to back, a busy machine could leave the writer no turn between the two looks)
        seen = path.stat().st_size
        wait_for(lambda: path.stat().st_size > seen, 10, 0.02, "the slow copy's next write")
        requests, cursor, _ = tick(instance, folder, cursor)
        assert requests == []  # still growing at the next tick
    finally:
        stop.set()
        writer.join()
    requests, cursor, _ = tick(instance, folder, cursor)
    assert [r.partition_key for r in requests] == ["p6_extrac"]


def test_a_replaced_file_is_scored_again(instance, folder):
    drop(folder, "p5_extrac.csv")
    first, cursor, _ = tick(instance, folder, None)
    assert tick(instance, folder, cursor)[0] == []
    drop(folder, "p5_extrac.csv", "a,b\n1,2\n3,4\n")
    again, cursor, added = tick(instance, folder, cursor)
    assert [r.partition_key for r in again] == ["p5_extrac"]
    assert again[0].run_key != first[0].run_key
    assert added == []  # the partition already exists


def test_hidden_temporary_and_other_files_are_ignored(instance, folder):
    for name in [".p7_extrac.csv.tmp", "~p7_extrac.csv", "p7_extrac.csv.part", "notes.txt", ".hidden.csv"]:
        drop(folder, name)
    (folder.inference_dir / "rejected").mkdir()
    drop(folder, "rejected/p4_extrac.csv")
    _, cursor, _ = tick(instance, folder, None)
    requests, _, _ = tick(instance, folder, cursor)
    assert requests == []


def test_bad_files_and_folders_never_raise(instance, folder):
    drop(folder, "p8_extrac.csv", "")  # empty: requested, the run rejects it with a reason
    (folder.inference_dir / "weird.csv").mkdir()  # a folder named like a CSV
    requests, cursor, _ = tick(instance, folder, None)
    assert [r.partition_key for r in requests] == ["p8_extrac"]
    shutil.rmtree(folder.inference_dir)  # the whole folder vanished
    requests, _, _ = tick(instance, folder, cursor)
    assert requests == []


def test_batches_scored_before_the_sensor_started_are_history(instance, folder):
    drop(folder, "p5_extrac.csv")
    drop(folder, "p6_extrac.csv")
    instance.add_dynamic_partitions("inference_batches", ["p5_extrac"])
    instance.report_runless_asset_event(dg.AssetMaterialization("predictions", partition="p5_extrac"))
    requests, cursor, _ = tick(instance, folder, None)
    assert [r.partition_key for r in requests] == ["p6_extrac"]
    assert tick(instance, folder, cursor)[0] == []


def test_a_name_that_cannot_be_a_batch_is_set_aside_and_the_sensor_keeps_going(instance, folder):
    drop(folder, "p9 extrac (copy).csv")
    drop(folder, "p11_extrac.CSV")
    requests, _, added = tick(instance, folder, None)
    assert [(r.partition_key, r.tags["source_file"]) for r in requests] == [("p11_extrac", "p11_extrac.CSV")] and added == ["p11_extrac"]
    reason = (folder.inference_dir / "rejected" / "p9 extrac (copy).csv.reason.txt").read_text()
    assert "cannot name a batch" in reason and "rename the file" in reason
    assert not (folder.inference_dir / "p9 extrac (copy).csv").exists()


def _judging_run(instance) -> dg.DagsterRun:
    """A batch run, still going, that has written a drift report calling for retraining on labels."""
    run = create_run_for_test(instance, job_name="batch_job", status=dg.DagsterRunStatus.STARTED)
    report = dg.AssetMaterialization(
        "drift_report", partition="p6_extrac", metadata={"retraining_due": True, "retraining_possible": True, "labeled_data_sha256": "ab" * 32}
    )
    instance.report_dagster_event(
        DagsterEvent(DagsterEventType.ASSET_MATERIALIZATION.value, job_name="batch_job", event_specific_data=StepMaterializationData(report)),
        run_id=run.run_id,
    )
    return run


def retrain_tick(instance, settings, cursor=None):
    return drift_retrain_sensor(dg.build_sensor_context(instance=instance, cursor=cursor, resources={"settings": settings}))


def test_retraining_is_requested_once_the_run_that_judged_the_batch_has_finished(instance, folder):
    """Its evidently report step and the retraining fit must not overlap (together over 4 GiB at twice
    the full scale), so a drift report calling for retraining is acted on when its run has ended."""
    run = _judging_run(instance)
    waiting = retrain_tick(instance, folder)
    assert not waiting.run_requests and waiting.skip_reason.skip_message == "a drift report waits for its run to finish"

    instance.report_run_failed(run, "its HTML report step failed")  # ended, however it ended
    [request] = retrain_tick(instance, folder, waiting.cursor).run_requests
    assert (request.job_name, request.tags[RETRAIN_BATCH_TAG]) == ("training_job", "p6_extrac")
    assert request.run_config == {"ops": {"raw_training": {"config": {"admit_batch": "p6_extrac"}}}}


def test_a_listening_tick_requests_the_retraining_when_the_judging_run_ends_meanwhile(instance, folder):
    """The tick that finds the report waiting keeps looking (sensor_listen_seconds) instead of leaving
    the request to the next daemon pass, 5 s later."""
    run = _judging_run(instance)
    ends = threading.Timer(0.5, instance.report_run_failed, [run, "its HTML report step failed"])
    ends.start()
    try:
        result = retrain_tick(instance, make_settings(folder.data_dir, sensor_listen_seconds=30.0))
    finally:
        ends.join()
    assert [(r.job_name, r.tags[RETRAIN_BATCH_TAG]) for r in result.run_requests] == [("training_job", "p6_extrac")]
