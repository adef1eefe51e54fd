"""Benchmark: wall time and peak RSS of the whole process tree, median of several runs.

    python -m bench            # full scale: 4 x 450,000 training rows, 450,000-row batches
    python -m bench --small    # a minute or two; the test suite runs it so this script cannot rot

Figures: the DuckDB floor (reading the same CSVs), the cold full graph through the `dagster`
CLI (with per-asset durations from the Dagster event log), the new-batch path under `dagster dev`
(file drop -> predictions, business_value and drift_report materialized, and where those seconds
went: sensor, queue, run worker start, each step), the drifted labeled batch (file drop -> those
three assets rewritten by the promoted model's rescoring run; peak RSS until that run, evidently's
HTML report included, has finished), and the same at other scales (growth:
seconds per million rows at each scale). Files are dropped half a sensor interval after the
sensor's latest tick: the average wait of a file that lands at a random moment. Every figure is also given as a ratio to the floor
measured in the same run, and the run records a CPU reference (fixed pure-Python and numpy
workloads, before and after), so runs from different hours can be compared.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FULL_ROWS = 450_000
BIN = Path(sys.executable).parent
TRAINING_FLOOR, BATCH_FLOOR = "floor: 4 training CSVs", "floor: 1 inference CSV"


def cpu_reference() -> dict[str, float]:
    """Seconds for two fixed workloads: how fast this machine is right now (other load included)."""
    import numpy as np

    started = time.perf_counter()
    total = 0
    for i in range(15_000_000):  # interpreter speed: what Dagster, pandas glue and sensors spend
        total += i % 7 * (i & 3)
    python_s = time.perf_counter() - started
    rng = np.random.default_rng(0)
    matrix = rng.standard_normal((600, 600))
    values = rng.standard_normal(5_000_000)
    started = time.perf_counter()
    for _ in range(5):  # vectorised work: what DuckDB, scikit-learn and evidently spend
        matrix = np.tanh(matrix @ matrix / 600)
        np.sort(values)
    numpy_s = time.perf_counter() - started
    return {"python_s": round(python_s, 3), "numpy_s": round(numpy_s, 3)}


def process_tree_rss(session_id: int) -> int:
    """Resident bytes of every process in the session (the benchmarked command and its children)."""
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if os.getsid(int(entry.name)) != session_id:
                continue
            with open(f"/proc/{entry.name}/statm") as handle:
                total += int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            continue
    return total


class TreeMonitor:
    """Samples the RSS of a process session every 100 ms and keeps the peak."""

    def __init__(self, session_id: int):
        self.session_id, self.peak, self._stop = session_id, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, process_tree_rss(self.session_id))
            self._stop.wait(0.1)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, int]:
    """Run `cmd` in its own session; return (wall seconds, peak RSS bytes of its process tree)."""
    started = time.perf_counter()
    process = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    with TreeMonitor(process.pid) as monitor:
        _, stderr = process.communicate()
    if process.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{stderr.decode()[-3000:]}")
    return time.perf_counter() - started, monitor.peak


def environment(data: Path, home: Path) -> dict[str, str]:
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    # MLflow exports MLFLOW_TRACKING_URI whenever a process calls set_tracking_uri: never inherit it
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "MLFLOW_TRACKING"))}
    env.update(MLOPS_DATA_DIR=str(data), DAGSTER_HOME=str(home), MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="1")
    return env


def sample_data(cache: Path, rows: int) -> Path:
    """p1..p4 training, p5 (no drift), p6 (mild, unlabeled), p7 (numeric shift, labeled): made once, then cached."""
    from mlops_assets.sample_data import generate_month, write_extract

    raw = cache / f"rows_{rows}"
    if not (raw / "done").exists():
        shutil.rmtree(raw, ignore_errors=True)
        for month in range(1, 5):
            write_extract(generate_month(month, rows), raw / "training")
        write_extract(generate_month(5, rows), raw / "inference")
        write_extract(generate_month(6, rows, drift="mild", with_target=False), raw / "later")
        # at least 20,000 rows, so even the smoke run's retraining has a held-out half to judge on
        write_extract(generate_month(7, max(rows, 20_000), drift="numeric_shift", with_target=True), raw / "later")
        (raw / "done").touch()
    return raw


def fresh_folder(raw: Path, work: Path) -> Path:
    data = work / "data"
    shutil.rmtree(work, ignore_errors=True)
    (data / "raw").mkdir(parents=True)
    for sub in ("training", "inference"):
        shutil.copytree(raw / sub, data / "raw" / sub)
    return data


def floor(raw: Path, work: Path, env: dict[str, str]) -> dict[str, tuple[float, int]]:
    """DuckDB alone reading the same CSVs (all columns) into a table: what the pipeline cannot beat."""
    results = {}
    for name, files in (("floor: 4 training CSVs", sorted((raw / "training").glob("*.csv"))), ("floor: 1 inference CSV", [raw / "inference" / "p5_extrac.csv"])):
        database = work / "floor.duckdb"
        database.unlink(missing_ok=True)
        code = (
            "import sys, duckdb; con = duckdb.connect(sys.argv[1]); "
            "con.execute('CREATE TABLE t AS SELECT * FROM read_csv($f, union_by_name=true)', {'f': sys.argv[2:]})"
        )
        results[name] = timed([sys.executable, "-c", code, str(database), *map(str, files)], env)
    return results


def step_durations(home: Path | str, run_id: str | None = None) -> dict[str, float]:
    """Seconds per asset step of one run, or summed over every run in the instance, from Dagster's event log."""
    import dagster as dg
    from dagster._core.events import DagsterEventType

    durations: dict[str, float] = {}
    with dg.DagsterInstance.from_config(str(home)) as instance:
        run_ids = [run_id] if run_id else [run.run_id for run in instance.get_runs()]
        for one_run in run_ids:
            for record in instance.all_logs(one_run, of_type=DagsterEventType.STEP_SUCCESS):
                event = record.dagster_event
                durations[event.step_key] = durations.get(event.step_key, 0) + event.event_specific_data.duration_ms / 1000
    return durations


def cold_graph(raw: Path, work: Path) -> tuple[float, int, dict[str, float]]:
    """Everything from an empty warehouse: training assets, then the newest batch's partition."""
    data = fresh_folder(raw, work)
    env = environment(data, work / "dagster_home")
    dagster = str(BIN / "dagster")
    seconds, peak = timed([dagster, "asset", "materialize", "-m", "mlops_assets.definitions", "--select", "raw_training,features,model,champion"], env)
    subprocess.run([str(BIN / "mlops-batches"), "register", "p5_extrac"], env=env, check=True, cwd=REPO, stdout=subprocess.DEVNULL)
    more, peak2 = timed(
        [dagster, "asset", "materialize", "-m", "mlops_assets.definitions", "--select", "predictions,business_value,drift_report", "--partition", "p5_extrac"],
        env,
    )
    return seconds + more, max(peak, peak2), step_durations(work / "dagster_home")


Leg = tuple[str, dict[str, str], "tuple[str, ...] | None"]
"""One run on a path: the label its phases start with, the tags that find it (its first run), and
the steps it is followed to (None: to the run's end)."""


def path_timeline(home: str, dropped_at: float, legs: list[Leg]) -> dict[str, float]:
    """Where the seconds from a drop went, run after run, from Dagster's run records and event log:
    the sensor requesting each run (after the drop, or after the previous leg), the run queue, the
    run worker starting (process, imports, loading the code location), each step, and the gaps
    between them. A run requested before the previous leg's last step ended counts from that end.
    Phases are differences of moments rounded to 10 ms, so they add up to the last one exactly
    (rounding each phase instead drifted by up to 5 ms a phase: 27 of them overshot the figure)."""
    import dagster as dg
    from dagster._core.events import DagsterEventType

    phases, previous = {}, dropped_at

    def mark(name: str, moment: float) -> None:
        nonlocal previous
        moment = max(moment, previous)
        phases[name] = round(phases.get(name, 0.0) + round(moment - dropped_at, 2) - round(previous - dropped_at, 2), 2)
        previous = moment

    with dg.DagsterInstance.from_config(home) as instance:
        for label, tags, steps in legs:
            [record] = instance.get_run_records(dg.RunsFilter(tags=tags), limit=1, order_by="create_timestamp", ascending=True)
            mark(f"{label}sensor: {'previous run' if phases else 'drop'} -> run requested", record.create_timestamp.timestamp())
            remaining = set(steps or ())
            for event in instance.all_logs(record.dagster_run.run_id):
                if not event.dagster_event:
                    continue
                kind, step = event.dagster_event.event_type, event.dagster_event.step_key
                if kind == DagsterEventType.RUN_STARTING:
                    mark(f"{label}run queue: requested -> launched", event.timestamp)
                elif kind == DagsterEventType.RUN_START:
                    mark(f"{label}run worker: process start, imports, code location loaded", event.timestamp)
                elif kind == DagsterEventType.STEP_START:
                    mark(f"{label}between steps", event.timestamp)
                elif kind == DagsterEventType.STEP_SUCCESS:
                    mark(f"{label}step {step}", event.timestamp)
                    remaining.discard(step)
                    if steps and not remaining:
                        break
                elif kind in (DagsterEventType.RUN_SUCCESS, DagsterEventType.RUN_FAILURE):
                    mark(f"{label}run end", event.timestamp)
    return phases


def wait_until(predicate, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise TimeoutError(f"not done within {timeout:.0f} s")


def promoted(home: str, run_id: str) -> bool:
    """Whether the run promoted its challenger: it materialized `champion`."""
    import dagster as dg

    with dg.DagsterInstance.from_config(home) as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey("champion"))
    return bool(event and event.run_id == run_id)


def rescored(home: str, batch: str, assets: tuple[str, ...], tags: dict[str, str]) -> bool:
    """Whether the run tagged `tags` has rewritten the batch's `assets` (the same three as a new
    batch; the run's evidently HTML report follows them and is not waited for)."""
    import dagster as dg

    with dg.DagsterInstance.from_config(home) as instance:
        runs = instance.get_runs(dg.RunsFilter(tags=tags), limit=1)
        if not runs:
            return False
        if runs[0].status == dg.DagsterRunStatus.FAILURE:
            raise RuntimeError(f"the rescoring run {runs[0].run_id} failed")
        latest = [
            instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=dg.AssetKey(a), asset_partitions=[batch]), limit=1).records
            for a in assets
        ]
    return all(records and records[0].run_id == runs[0].run_id for records in latest)


def last_tick(home: str, name: str) -> float:
    """When the daemon last evaluated sensor `name` (epoch seconds; 0.0 before its first tick)."""
    import dagster as dg

    with dg.DagsterInstance.from_config(home) as instance:
        return max(
            (
                tick.timestamp
                for state in instance.all_instigator_state()
                if state.instigator_name == name
                for tick in instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=1)
            ),
            default=0.0,
        )


def sensor_ticked(home: str, name: str, since: float) -> bool:
    """Whether the daemon has evaluated the sensor since `since` (epoch seconds): the deployment is
    up and the clock can start."""
    return last_tick(home, name) > since


def drop_between_ticks(source: Path, folder: Path, home: str) -> float:
    """`drop`, half a sensor interval after the inference sensor's latest tick.

    A user's file lands at a random moment of the sensor's cycle; dropping right after the tick this
    script polls for would always measure the same end of it. (Before the sensor watched the folder
    during its ticks, a copied file waited 3.0-4.7 s for its run request over the whole cycle, mean
    3.35 s over 10 drops at 5 phases; mid-cycle it now waits ~0.2 s.)
    """
    from dagster._daemon.sensor import MIN_INTERVAL_LOOP_TIME

    from mlops_assets.defs.sensors import inference_folder_sensor

    interval = max(MIN_INTERVAL_LOOP_TIME, inference_folder_sensor.minimum_interval_seconds)

    def recent_tick() -> float:
        tick = last_tick(home, inference_folder_sensor.name)
        return tick if tick > time.time() - interval else 0.0

    tick = wait_until(recent_tick, 60)
    time.sleep(max(0.0, tick + interval / 2 - time.time()))
    return drop(source, folder)


def progress(message: str) -> None:
    print(f"[bench {dt.datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def drop(source: Path, folder: Path) -> float:
    """Copy to a hidden name, then rename: an atomic drop. Returns the moment of the rename."""
    staging = folder / f".{source.name}.tmp"
    shutil.copy(source, staging)
    moment = time.monotonic()
    os.replace(staging, folder / source.name)
    return moment


TIMELINES = ("new_batch_timeline_s", "retraining_timeline_s")
BATCH_ASSETS = ("predictions", "business_value", "drift_report")
"""What a new batch's path ends with, and a rescoring's: the batch scored, valued and judged (its
evidently HTML report follows and is not waited for)."""


@contextlib.contextmanager
def dagster_dev(env: dict[str, str], port: int):
    """`dagster dev` in its own session, from its first inference-sensor tick (when the clock may
    start) to its stop; yields the monitor of its process tree's RSS."""
    started = time.time()
    process = subprocess.Popen(
        [str(BIN / "dagster"), "dev", "-m", "mlops_assets.definitions", "-h", "127.0.0.1", "-p", str(port)],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        with TreeMonitor(process.pid) as monitor:
            wait_until(lambda: sensor_ticked(env["DAGSTER_HOME"], "inference_folder_sensor", started), 180)
            yield monitor
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def finished_run(home: str, tags: dict[str, str]):
    """The newest run tagged `tags` that succeeded or failed, or None."""
    import dagster as dg

    with dg.DagsterInstance.from_config(home) as instance:
        runs = instance.get_runs(dg.RunsFilter(tags=tags, statuses=[dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE]))
    return runs[0] if runs else None


def materialized(home: str, batch: str, assets: tuple[str, ...]) -> bool:
    import dagster as dg

    with dg.DagsterInstance.from_config(home) as instance:
        return all(batch in instance.get_materialized_partitions(dg.AssetKey(a)) for a in assets)


def retraining_legs(batch: str, version: int, was_promoted: bool) -> list[Leg]:
    """The drifted batch's path: its scoring run to the end (the retraining waits for its evidently
    report), the retraining run to its promotion (or its end), the rescoring run to the batch's assets."""
    from mlops_assets.defs.sensors import RESCORED_BY_TAG, RETRAIN_BATCH_TAG

    legs: list[Leg] = [
        ("scoring run: ", {"dagster/partition": batch}, None),
        ("retraining run: ", {RETRAIN_BATCH_TAG: batch}, ("champion",) if was_promoted else None),
    ]
    return legs + [("rescoring run: ", {RESCORED_BY_TAG: str(version)}, BATCH_ASSETS)] if was_promoted else legs


def wall_clock(monotonic_moment: float) -> float:
    """Epoch seconds of a `time.monotonic()` moment, to compare with Dagster's timestamps."""
    return time.time() - (time.monotonic() - monotonic_moment)


def new_batch_paths(raw: Path, work: Path, timeout: float) -> tuple[dict[str, tuple[float, int]], dict[str, dict[str, float]]]:
    """Under `dagster dev`: a new batch until its three assets exist; a drifted labeled batch until
    rescored. Also where each path's seconds went (`TIMELINES`)."""
    import dagster as dg

    from mlops_assets.defs.sensors import RESCORED_BY_TAG, RETRAIN_BATCH_TAG

    data = work / "data"
    env = environment(data, work / "dagster_home")
    home = env["DAGSTER_HOME"]
    results, timelines = {}, {}
    with dagster_dev(env, 3900 + os.getpid() % 100) as monitor:
        dropped = drop_between_ticks(raw / "later" / "p6_extrac.csv", data / "raw" / "inference", home)
        wait_until(lambda: materialized(home, "p6_extrac", BATCH_ASSETS), timeout)
        results["new batch: drop -> 3 assets (dagster dev)"] = (time.monotonic() - dropped, monitor.peak)
        timelines["new_batch_timeline_s"] = path_timeline(home, wall_clock(dropped), [("", {"dagster/partition": "p6_extrac"}, BATCH_ASSETS)])

        dropped = drop_between_ticks(raw / "later" / "p7_extrac.csv", data / "raw" / "inference", home)
        retrain = wait_until(lambda: finished_run(home, {RETRAIN_BATCH_TAG: "p7_extrac"}), timeout * 2)
        results["drifted labeled batch: drop -> challenger trained (dagster dev)"] = (time.monotonic() - dropped, monitor.peak)
        if retrain.status != dg.DagsterRunStatus.SUCCESS:
            raise RuntimeError(f"the retraining run {retrain.run_id} failed: a loop that cannot retrain is not benchmarked")
        if promoted(home, retrain.run_id):
            wait_until(lambda: rescored(home, "p7_extrac", BATCH_ASSETS, {RESCORED_BY_TAG: "2"}), timeout)
            seconds = time.monotonic() - dropped
            wait_until(lambda: finished_run(home, {RESCORED_BY_TAG: "2"}), timeout)  # the HTML report too, for the peak RSS
            results["drifted labeled batch: drop -> rescored by promoted model (dagster dev)"] = (seconds, monitor.peak)
            timelines["retraining_timeline_s"] = path_timeline(home, wall_clock(dropped), retraining_legs("p7_extrac", 2, True))
    return results, timelines


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="3,000 rows, one run, one scale: a smoke run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--scales", default="0.1,0.5,1.0,2.0", help="fractions of full scale; figures without @ are at 1.0")
    parser.add_argument("--runs-below-full", type=int, help="runs at the smaller scales (default: --runs)")
    parser.add_argument("--cache", type=Path, default=REPO / "bench" / "cache")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args(argv)
    runs, scales, full_rows = (1, [1.0], 3_000) if args.small else (args.runs, [float(s) for s in args.scales.split(",")], FULL_ROWS)
    reference = 1.0 if 1.0 in scales else max(scales)
    cpu_before = cpu_reference()

    samples: dict[str, list[tuple[float, int]]] = {}
    steps: dict[str, list[float]] = {}
    phases: dict[str, dict[str, list[float]]] = {name: {} for name in TIMELINES}
    with tempfile.TemporaryDirectory(prefix="mlops-bench-") as tmp:
        for scale in sorted(scales):
            rows = int(full_rows * scale)
            label = "" if scale == reference else f" @{scale:.0%}"
            progress(f"{rows:,} rows per extract: sample data")
            raw = sample_data(args.cache, rows)
            scale_runs = runs if scale == reference or args.runs_below_full is None else args.runs_below_full
            for run in range(scale_runs):
                progress(f"{rows:,} rows, run {run + 1}/{scale_runs}: floor, cold graph, dagster dev paths")
                work = Path(tmp) / f"scale_{scale}_{run}"
                for name, sample in floor(raw, Path(tmp), os.environ.copy()).items():
                    samples.setdefault(name + label, []).append(sample)
                seconds, peak, durations = cold_graph(raw, work)
                samples.setdefault(f"cold full graph{label}", []).append((seconds, peak))
                if scale == reference:
                    for step, value in durations.items():
                        steps.setdefault(step, []).append(value)
                paths, timelines = new_batch_paths(raw, work, timeout=600)
                for name, sample in paths.items():
                    samples.setdefault(name + label, []).append(sample)
                if scale == reference:
                    for name, timeline in timelines.items():
                        for phase, value in timeline.items():
                            phases[name].setdefault(phase, []).append(value)
    report = summarize(samples, steps, full_rows, {scale: int(full_rows * scale) for scale in scales})
    for name, timeline in phases.items():
        report[name] = {phase: statistics.median(v) for phase, v in timeline.items()}
    report["cpu_reference"] = {"before": cpu_before, "after": cpu_reference()}
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"bench-{'small' if args.small else 'full'}-{dt.datetime.now():%Y%m%dT%H%M%S}.json"
    out.write_text(json.dumps(report, indent=2))
    print(render(report))
    print(f"\nwritten to {out}")
    return report


def scale_label(name: str) -> str:
    """' @50%' for a figure measured at another scale than the reference one, '' otherwise."""
    return name[name.index(" @"):] if " @" in name else ""


def floor_of(name: str, medians: dict[str, float]) -> float:
    """The floor a figure is compared with, measured at its scale in the same run: reading the
    training CSVs and the batch CSV for the cold graph (what it reads), the batch CSV for the
    per-batch paths."""
    scale = scale_label(name)
    training, batch = medians.get(TRAINING_FLOOR + scale, float("nan")), medians.get(BATCH_FLOOR + scale, float("nan"))
    if name.startswith("floor:"):
        return training if name.startswith(TRAINING_FLOOR) else batch
    return training + batch if name.startswith("cold full graph") else batch


def summarize(samples: dict, steps: dict, rows: int, rows_at: dict[float, int]) -> dict:
    medians = {name: statistics.median(s for s, _ in values) for name, values in samples.items()}
    figures = []
    for name, values in samples.items():
        seconds = [s for s, _ in values]
        figures.append(
            {
                "figure": name,
                "median_s": medians[name],
                "min_s": min(seconds),
                "max_s": max(seconds),
                "peak_rss_gib": max(p for _, p in values) / 2**30,
                "ratio_to_floor": medians[name] / floor_of(name, medians),
                "runs": len(values),
            }
        )
    step_table = {step: statistics.median(v) for step, v in sorted(steps.items())}
    scoring = step_table.get("predictions", 0) + step_table.get("business_value", 0)
    growth = []
    for scale, scale_rows in sorted(rows_at.items()):
        label = f" @{scale:.0%}" if f"cold full graph @{scale:.0%}" in medians else ""
        cold = medians.get(f"cold full graph{label}")
        batch = medians.get(f"new batch: drop -> 3 assets (dagster dev){label}")
        peak = max(p for name, values in samples.items() if scale_label(name) == label for _, p in values)
        growth.append({
            "scale": scale, "rows_per_extract": scale_rows,
            "cold_graph_s_per_million_rows": cold / (5 * scale_rows) * 1e6 if cold else None,
            "new_batch_s_per_million_rows": batch / scale_rows * 1e6 if batch else None,
            "peak_rss_gib": peak / 2**30,
        })
    return {
        "rows_per_extract": rows,
        "figures": figures,
        "asset_step_seconds": step_table,
        "scoring_rows_per_second": rows / scoring if scoring else None,
        "growth": growth,
        "machine": {"cpus": os.cpu_count()},
    }


def render(report: dict) -> str:
    lines = [f"rows per extract: {report['rows_per_extract']:,}", "", "| figure | median s | min s | max s | peak RSS GiB | x floor |", "|---|---:|---:|---:|---:|---:|"]
    for f in report["figures"]:
        lines.append(f"| {f['figure']} | {f['median_s']:.1f} | {f['min_s']:.1f} | {f['max_s']:.1f} | {f['peak_rss_gib']:.2f} | {f['ratio_to_floor']:.1f} |")
    lines += ["", "| asset step (cold graph) | median s |", "|---|---:|"]
    lines += [f"| {step} | {seconds:.1f} |" for step, seconds in report["asset_step_seconds"].items()]
    for name, path in zip(TIMELINES, ("new batch", "drifted labeled batch, drop -> rescored")):
        if report.get(name):
            lines += ["", f"| {path} under dagster dev: where the seconds go | median s |", "|---|---:|"]
            lines += [f"| {phase} | {seconds:.1f} |" for phase, seconds in report[name].items()]
    if report["scoring_rows_per_second"]:
        lines.append(f"\npredictions + business_value: {report['scoring_rows_per_second']:,.0f} rows/s")
    if len(report["growth"]) > 1:
        lines += ["", "| scale | rows per extract | cold graph s / M rows | new batch s / M rows | peak RSS GiB |", "|---:|---:|---:|---:|---:|"]
        for g in report["growth"]:
            cold, batch = g["cold_graph_s_per_million_rows"], g["new_batch_s_per_million_rows"]
            lines.append(f"| {g['scale']:.0%} | {g['rows_per_extract']:,} | {cold or float('nan'):.1f} | {batch or float('nan'):.1f} | {g['peak_rss_gib']:.2f} |")
    cpu = report.get("cpu_reference")
    if cpu:
        lines.append(f"\nCPU reference (pure Python / numpy, s): before {cpu['before']['python_s']:.2f} / {cpu['before']['numpy_s']:.2f}, "
                     f"after {cpu['after']['python_s']:.2f} / {cpu['after']['numpy_s']:.2f}")
    return "\n".join(lines)
