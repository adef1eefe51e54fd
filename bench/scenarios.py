"""What retraining does for each drift scenario of the generator, at full scale, under `dagster dev`.

    python -m bench.scenarios                 # 4 x 450,000 training rows, a 450,000-row labeled month per scenario
    python -m bench.scenarios --rows 20000    # a quick look

For each scenario a copy of one trained deployment gets the scenario's labeled month dropped into
its inbox, and the sensors do the rest. Reported: drift_score, realized and estimated AUC, the
champion's and the challenger's AUC on the held-out half, the winning candidate, seconds from the
drop to the batch's three assets, to the retraining's end and to the rescored batch (as `python -m
bench` measures them), where those seconds went run by run, the retraining run's step times and the
peak RSS of the process tree.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from bench.run import (
    BATCH_ASSETS, BIN, FULL_ROWS, REPO, dagster_dev, drop_between_ticks, environment, finished_run, fresh_folder, materialized, path_timeline,
    progress, promoted, rescored, retraining_legs, sample_data, step_durations, timed, wait_until, wall_clock,
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


def first_judgement(home: str, batch: str) -> dict:
    """The metadata of the batch's first `drift_report`: the judgement of the champion that scored it."""
    import dagster as dg

    with dg.DagsterInstance.from_config(home) as instance:
        [record] = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("drift_report"), asset_partitions=[batch]), limit=1, ascending=True
        ).records
    return {k: v.value for k, v in record.asset_materialization.metadata.items()}


def run_scenario(base: Path, work: Path, month: Path, timeout: float) -> dict:
    """Seconds are measured as `python -m bench` measures them: to the batch's three assets (scored,
    valued, judged), to the retraining run's end, to the three assets rewritten by the rescoring run;
    whether a retraining and a rescoring follow is read from the judgement and the promotion, not
    waited for. The peak RSS runs until the last run has finished, evidently's HTML reports included."""
    import duckdb

    from mlops_assets.defs.sensors import RESCORED_BY_TAG, RETRAIN_BATCH_TAG

    shutil.copytree(base, work)
    data = work / "data"
    env = environment(data, work / "dagster_home")
    home = env["DAGSTER_HOME"]
    batch = month.stem
    result: dict = {}
    with dagster_dev(env, 3800 + os.getpid() % 100) as monitor:
        dropped = drop_between_ticks(month, data / "raw" / "inference", home)
        wait_until(lambda: materialized(home, batch, BATCH_ASSETS), timeout)
        result["seconds_drop_to_3_assets"] = round(time.monotonic() - dropped, 1)
        judgement = first_judgement(home, batch)
        last_run = {"dagster/partition": batch}
        legs = [("", last_run, BATCH_ASSETS)]
        if judgement["retraining_due"] and judgement["retraining_possible"]:
            run = wait_until(lambda: finished_run(home, {RETRAIN_BATCH_TAG: batch}), timeout * 3)
            result["seconds_drop_to_retrained"] = round(time.monotonic() - dropped, 1)
            result["retraining_status"] = run.status.value
            result["retraining_steps_s"] = {k: round(v, 1) for k, v in step_durations(home, run.run_id).items()}
            was_promoted = promoted(home, run.run_id)
            if was_promoted:
                wait_until(lambda: rescored(home, batch, BATCH_ASSETS, {RESCORED_BY_TAG: "2"}), timeout)
                result["seconds_drop_to_rescored"] = round(time.monotonic() - dropped, 1)
                last_run = {RESCORED_BY_TAG: "2"}
            legs = retraining_legs(batch, 2, was_promoted)
        wait_until(lambda: finished_run(home, last_run), timeout)
        result["peak_rss_gib"] = round(monitor.peak / 2**30, 2)
    result["timeline_s"] = path_timeline(home, wall_clock(dropped), legs)
    result.update({k: judgement[k] for k in ("drift_score", "drifted_columns", "realized_auc", "estimated_auc", "retraining", "champion_version")})
    with duckdb.connect(str(data / "warehouse.duckdb"), read_only=True) as con:
        after = con.execute("SELECT drift_score, realized_auc, estimated_auc, champion_version FROM drift_history WHERE batch = ?", [batch]).fetchall()[0]
        model = con.execute(
            "SELECT version, candidate, roc_auc, champion_auc_same_data, promoted, promotion_reason, evaluation FROM model WHERE version = 2"
        ).fetchall()
        candidates = dict(con.execute("SELECT candidate, round(roc_auc, 4) FROM model_candidates WHERE version = 2").fetchall())
    result["after_rescoring"] = dict(zip(("drift_score", "realized_auc_held_out", "estimated_auc", "scored_by"), after))
    if model:
        version, candidate, auc, champion_auc, is_champion, reason, evaluation = model[0]
        result.update(
            challenger_version=version, winner=candidate, challenger_auc_held_out=auc, champion_auc_held_out=champion_auc,
            promoted=is_champion, promotion_reason=reason, evaluation=evaluation, candidates=candidates,
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
