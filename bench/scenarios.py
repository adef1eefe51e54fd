"""What retraining does for each drift scenario of the generator, at full scale, under `dagster dev`.

    python -m bench.scenarios                 # 4 x 450,000 training rows, a 450,000-row labeled month per scenario
    python -m bench.scenarios --rows 20000    # a quick look

For each scenario a copy of one trained deployment gets the scenario's labeled month dropped into
its inbox, and the sensors do the rest. Reported: drift_score, realized and estimated AUC, the
champion's and the challenger's AUC on the held-out half, the winning candidate, seconds from the
drop to the rescored batch, the retraining run's step times and the peak RSS of the process tree.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from bench.run import (
    BIN, FULL_ROWS, REPO, TreeMonitor, drop_between_ticks, environment, fresh_folder, progress, sample_data, sensor_ticked, step_durations, timed,
    wait_until,
)

SCENARIOS = ("none", "mild", "categorical_mix", "numeric_shift", "concept_change")


def scenario_month(cache: Path, rows: int, scenario: str) -> Path:
    """The month after the window, labeled, shaped by `scenario`; generated once, then cached."""
    from mlops_assets.sample_data import generate_month, write_extract

    folder = cache / f"rows_{rows}" / "scenarios" / scenario
    path = folder / "p6_extrac.csv"
    if not path.exists():
        write_extract(generate_month(6, rows, seed=29, drift=scenario, with_target=True), folder)
    return path


def _runs(home: str):
    import dagster as dg

    with dg.DagsterInstance.from_config(home) as instance:
        return list(instance.get_runs())


def run_scenario(base: Path, work: Path, month: Path, timeout: float) -> dict:
    import dagster as dg
    import duckdb

    from mlops_assets.defs.sensors import RESCORED_BY_TAG, RETRAIN_BATCH_TAG

    shutil.copytree(base, work)
    data, home = work / "data", work / "dagster_home"
    env = environment(data, home)
    started = time.time()
    process = subprocess.Popen(
        [str(BIN / "dagster"), "dev", "-m", "mlops_assets.definitions", "-h", "127.0.0.1", "-p", str(3800 + os.getpid() % 100)],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    done = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE}

    def finished(tags: dict[str, str]):
        return next((r for r in _runs(str(home)) if r.status in done and tags.items() <= r.tags.items()), None)

    result: dict = {}
    try:
        with TreeMonitor(process.pid) as monitor:
            wait_until(lambda: sensor_ticked(str(home), "inference_folder_sensor", started), 180)
            dropped = drop_between_ticks(month, data / "raw" / "inference", str(home))
            scoring = wait_until(lambda: finished({"dagster/sensor_name": "inference_folder_sensor"}), timeout)
            result["seconds_drop_to_scored"] = round(time.monotonic() - dropped, 1)
            result["scoring_status"] = scoring.status.value
            time.sleep(8)  # the retrain sensor's interval: has it asked for a retraining?
            retraining = [r for r in _runs(str(home)) if r.tags.get(RETRAIN_BATCH_TAG)]
            if retraining:
                run = wait_until(lambda: finished({RETRAIN_BATCH_TAG: "p6_extrac"}), timeout * 3)
                result["retraining_status"] = run.status.value
                result["retraining_steps_s"] = {k: round(v, 1) for k, v in step_durations(home, run.run_id).items()}
                result["seconds_drop_to_retrained"] = round(time.monotonic() - dropped, 1)
                time.sleep(8)
                if any(r.tags.get(RESCORED_BY_TAG) for r in _runs(str(home))):
                    wait_until(lambda: finished({RESCORED_BY_TAG: "2"}), timeout)
                    result["seconds_drop_to_rescored"] = round(time.monotonic() - dropped, 1)
            result["peak_rss_gib"] = round(monitor.peak / 2**30, 2)
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
    with dg.DagsterInstance.from_config(str(home)) as instance:  # the batch as the champion first judged it
        first_judgement = instance.fetch_materializations(dg.AssetKey("drift_report"), limit=1, ascending=True).records[0]
        metadata = {k: v.value for k, v in first_judgement.asset_materialization.metadata.items()}
    result.update({k: metadata[k] for k in ("drift_score", "drifted_columns", "realized_auc", "estimated_auc", "retraining", "champion_version")})
    with duckdb.connect(str(data / "warehouse.duckdb"), read_only=True) as con:
        after = con.execute("SELECT drift_score, realized_auc, estimated_auc, champion_version FROM drift_history WHERE batch = 'p6_extrac'").fetchall()[0]
        model = con.execute(
            "SELECT version, candidate, roc_auc, champion_auc_same_data, promoted, promotion_reason, evaluation FROM model WHERE version = 2"
        ).fetchall()
        candidates = dict(con.execute("SELECT candidate, round(roc_auc, 4) FROM model_candidates WHERE version = 2").fetchall())
    result["after_rescoring"] = dict(zip(("drift_score", "realized_auc_held_out", "estimated_auc", "scored_by"), after))
    if model:
        version, candidate, auc, champion_auc, promoted, reason, evaluation = model[0]
        result.update(
            challenger_version=version, winner=candidate, challenger_auc_held_out=auc, champion_auc_held_out=champion_auc,
            promoted=promoted, promotion_reason=reason, evaluation=evaluation, candidates=candidates,
        )
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=FULL_ROWS)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--cache", type=Path, default=REPO / "bench" / "cache")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args(argv)
    raw = sample_data(args.cache, args.rows)
    report: dict = {"rows": args.rows, "started": f"{dt.datetime.now():%Y-%m-%d %H:%M}", "scenarios": {}}
    with tempfile.TemporaryDirectory(prefix="mlops-scenarios-") as tmp:
        base = Path(tmp) / "base"
        data = fresh_folder(raw, base)
        (data / "raw" / "inference" / "p5_extrac.csv").unlink()
        progress(f"{args.rows:,} rows per extract: training the champion")
        seconds, peak = timed(
            [str(BIN / "dagster"), "asset", "materialize", "-m", "mlops_assets.definitions", "--select", "raw_training,features,model,champion"],
            environment(data, base / "dagster_home"),
        )
        report["ordinary_training"] = {"seconds": round(seconds, 1), "peak_rss_gib": round(peak / 2**30, 2),
                                       "steps_s": {k: round(v, 1) for k, v in step_durations(base / "dagster_home").items()}}
        for scenario in args.scenarios.split(","):
            progress(f"scenario {scenario}")
            month = scenario_month(args.cache, args.rows, scenario)
            report["scenarios"][scenario] = run_scenario(base, Path(tmp) / scenario, month, timeout=900)
            progress(json.dumps(report["scenarios"][scenario]))
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"scenarios-{args.rows}-{dt.datetime.now():%Y%m%dT%H%M%S}.json"
    out.write_text(json.dumps(report, indent=2, default=str))
    print(json.dumps(report, indent=2, default=str))
    progress(f"written to {out}")
    return report


if __name__ == "__main__":
    main()
