"""Group `training`: raw_training -> features -> model -> champion. Thin wiring around `extracts`,
`training` and `warehouse`."""


import datetime as dt
import os
import shutil
from pathlib import Path

import dagster as dg
import pandas as pd
import pydantic
from dagster_duckdb import DuckDBResource

from mlops_assets import contract, model_registry
from mlops_assets.batch_files import batch_path, file_name
from mlops_assets.extracts import ExtractError, load_extracts
from mlops_assets.extracts.file_bytes import read_header
from mlops_assets.extracts.sql import sql_literal
from mlops_assets.labels import write_labeled_extract
from mlops_assets.scoring import markdown_table
from mlops_assets.settings import PipelineSettings
from mlops_assets.training_window import commit, propose, window_files
from mlops_assets.warehouse import (
    champion as current_champion,
    clean_training_files,
    promote,
    record_model,
    replace_table,
    replace_training_window,
    replace_view,
    table_exists,
)

GROUP = "training"


def extract_failure(exc: ExtractError) -> dg.Failure:
    """A rejected file as a Dagster failure whose UI panel names the file and the problem."""
    return dg.Failure(description=str(exc), metadata={"file": str(exc.path), "problem": exc.problem})


class TrainingWindowConfig(dg.Config):
    admit_batch: str = pydantic.Field(
        default="",
        description="Labeled inference batch (e.g. p6_extrac) that joins the training window first; the oldest "
        "training extract is moved to data/raw/archive/, and the model is compared with the champion on a held-out "
        "part of this batch. Set by drift_retrain_sensor.",
    )


def _stage_labeled_batch(settings: PipelineSettings, warehouse: DuckDBResource, batch: str) -> Path:
    """The batch as a labeled extract in the staging folder, under its canonical name: a copy of its
    inference file when that carries `target`, otherwise that file joined with the labels that
    arrived later. The training folder itself changes only when the run completes."""
    batch_file = batch_path(settings.inference_dir, batch)
    if not batch_file.is_file():
        raise dg.Failure(description=f"batch {batch} cannot join the training window: {batch_file} does not exist")
    out = settings.staging_dir / file_name(batch)
    out.parent.mkdir(parents=True, exist_ok=True)
    if contract.TARGET in read_header(batch_file):
        partial = out.with_name(f".{out.name}.partial")
        shutil.copyfile(batch_file, partial)
        os.replace(partial, out)
        return out
    with warehouse.get_connection() as con:
        labeled = table_exists(con, "batch_labels") and con.execute(
            "SELECT count(*) FROM batch_labels WHERE batch = ?", [batch]
        ).fetchall()[0][0]
        if not labeled:
            raise dg.Failure(
                description=f"batch {batch} cannot join the training window: it has no labels (no `target` column, "
                f"no {batch_path(settings.labels_dir, batch)} received)"
            )
        labels = f"(SELECT key_value, target FROM batch_labels WHERE batch = {sql_literal(batch)})"
        write_labeled_extract(con, batch_file, labels, out)
    return out


@dg.asset(group_name=GROUP, pool="duckdb", kinds={"duckdb"})
def raw_training(
    context: dg.AssetExecutionContext, config: TrainingWindowConfig, settings: PipelineSettings, warehouse: DuckDBResource
) -> dg.MaterializeResult:
    """The newest `training_window` labeled extracts (by the month they hold), validated against the
    contract, one row per customer-month tagged with its `source_file`. The table is only replaced
    once every file passed; `training_window` lists the files in order with their content hashes.
    A file read clean last time keeps its rows while its bytes are the same, so a retraining run
    reads only the batch it admits. In a retraining run the window includes the labeled batch; the
    folders follow when the run completes."""
    admitted = _stage_labeled_batch(settings, warehouse, config.admit_batch) if config.admit_batch else None
    window = propose(settings.training_dir, settings.training_window, admitted)
    if not window.files:
        raise dg.Failure(
            description=f"no training extracts (<name>.csv) in {settings.training_dir}; "
            "copy labeled extracts there or run `python -m mlops_assets.sample_data`",
        )
    context.log.info(f"training window: {window}")
    with warehouse.get_connection() as con:
        try:
            checks = load_extracts(
                con, "raw_training", list(window.files), with_target=True, max_invalid_share=settings.max_invalid_share,
                loaded=clean_training_files(con),
            )
        except ExtractError as exc:
            raise extract_failure(exc) from exc
        rows = con.execute("SELECT count(*) FROM raw_training").fetchall()[0][0]
        replace_training_window(
            con,
            pd.DataFrame(
                {
                    "position": range(1, len(checks) + 1),
                    "file_name": [c.path.name for c in checks],
                    "sha256": [c.sha256 for c in checks],
                    "size_bytes": [c.size_bytes for c in checks],
                    "rows": [c.rows for c in checks],
                    "admitted": [c.path == admitted for c in checks],
                    "values_nulled": [sum(c.invalid_values.values()) for c in checks],
                    "duplicate_keys_dropped": [c.duplicate_keys for c in checks],
                }
            ),
        )
    extra = sorted({c for check in checks for c in check.extra_columns})
    if extra:
        context.log.warning(f"ignored columns not in the contract: {', '.join(extra)}")
    invalid = {f"{c.path.name}:{col}": n for c in checks for col, n in c.invalid_values.items()}
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": rows,
            "files": [c.path.name for c in checks],
            "rows_per_file": {c.path.name: c.rows for c in checks},
            "sha256_per_file": {c.path.name: c.sha256 for c in checks},
            "ignored_extra_columns": extra,
            "non_numeric_values_nulled": invalid,
            "duplicate_keys_dropped": sum(c.duplicate_keys for c in checks),
            "window_change": (
                f"admits {admitted.name}, archives {', '.join(window.leaving) or 'nothing'} when the run completes"
                if admitted else "none"
            ),
        }
    )


def _window(con) -> list[tuple[str, bool]]:
    """The loaded window's files, oldest first, and whether each is the admitted batch."""
    if not table_exists(con, "training_window"):
        return []
    return [(name, admitted) for name, admitted in con.execute("SELECT file_name, admitted FROM training_window ORDER BY position").fetchall()]


def _admitted_file(con) -> str | None:
    """The batch file the current training window admitted for a retraining run, if any."""
    return next((name for name, admitted in _window(con) if admitted), None)


@dg.asset(group_name=GROUP, pool="duckdb", kinds={"duckdb"}, deps=[raw_training])
def features(settings: PipelineSettings, warehouse: DuckDBResource) -> dg.MaterializeResult:
    """Model-ready rows: the 59 contract features, `target`, trace columns and a `split`. Ordinary
    training tests out of time (the newest extract is the test month, as the bank validates models);
    a retraining run holds out part of the batch that triggered it (seeded hash of `key_value`, the
    keys in table `held_out_keys`) and learns from the rest, so the challenger can learn the change
    it is judged on. A view on `raw_training`: copying the rows cost 3 s at full scale and 10 s at 200 %."""
    columns = ", ".join(contract.TRACE_COLUMNS + contract.MODEL_FEATURES + (contract.TARGET, "source_file"))
    with warehouse.get_connection() as con:
        files = [name for name, _ in _window(con)] or sorted(
            (r[0] for r in con.execute("SELECT DISTINCT source_file FROM raw_training").fetchall()), key=contract.extract_sort_key
        )
        admitted = _admitted_file(con)
        if admitted:
            from mlops_assets import training

            keys = con.execute("SELECT key_value FROM raw_training WHERE source_file = ?", [admitted]).df()["key_value"]
            held = training.held_out(keys, seed=settings.random_seed, share=settings.holdout_share)
            con.register("held_out_frame", pd.DataFrame({"key_value": keys[held]}))
            replace_table(con, "held_out_keys", "SELECT key_value FROM held_out_frame")
            test = f"source_file = {sql_literal(admitted)} AND key_value IN (SELECT key_value FROM held_out_keys)"
            split = (
                f"held out: {settings.holdout_share:.0%} of {admitted} (seeded hash of key_value), the batch that "
                f"triggered retraining; train = the rest of it and the {len(files) - 1} older extract(s)"
            )
        else:
            if len(files) < 2:
                raise dg.Failure(
                    description=f"raw_training holds {len(files)} extract(s); an out-of-time split needs at least 2"
                )
            test = f"source_file = {sql_literal(files[-1])}"
            split = f"out of time: test = {files[-1]} (newest extract), train = the {len(files) - 1} older ones"
        rows = replace_view(con, "features", f"SELECT {columns}, CASE WHEN {test} THEN 'test' ELSE 'train' END AS split FROM raw_training")
        splits = con.execute(
            "SELECT split, count(*), avg(target) FROM features GROUP BY split ORDER BY split DESC"
        ).fetchall()
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": rows,
            "split": split,
            "rows_by_split": {s: n for s, n, _ in splits},
            "positive_rate_by_split": {s: round(r, 5) for s, _, r in splits},
        }
    )


@dg.asset(
    group_name=GROUP,
    pool="duckdb",
    kinds={"sklearn", "mlflow", "duckdb"},
    deps=[features],
    required_resource_keys={"mlflow", "settings", "warehouse"},
)
def model(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """A challenger: HistGradientBoosting pipelines fitted on candidate training sets (one in ordinary
    training; in a retraining run also the window weighted to recent months and the newest month
    alone), the best on the evaluation rows kept, each a nested MLflow run. The winner is registered
    in MLflow and compared with the champion on the same rows; the promotion gate's verdict goes to
    table `model`, and the `champion` asset acts on it."""
    mlflow = context.resources.mlflow
    result = _train_and_register(context, context.resources.settings, mlflow)
    mlflow.end_run()  # asset jobs have no run-end hook; a failure is closed by the resource's teardown
    return result


def _load_training_rows(con, settings: PipelineSettings, columns: str, train_files: list[str], retraining: bool) -> pd.DataFrame:
    """The uniform sample of the train split (`in_sample`), plus, in a retraining run, every other
    train row of the newest month, for the candidates that lean on it; `month_age` is 0 for the
    newest of `train_files` (oldest first), 1 for the one before, ...

    The sample is the `max_training_rows` rows with the smallest seeded hash of their identity: a
    uniform sample (business value multiplies the probabilities, so they must stay calibrated),
    repeatable whatever order rows are stored in, and ~10x faster than DuckDB's single-threaded
    reservoir sample. Only the hash cut-off is ranked; one query then returns the rows in hash
    order (1 GiB less memory and 12 s less at 200 % scale than ranking whole rows and joining in pandas)."""
    identity = f"hash(source_file, key_value, {int(settings.random_seed)})"
    [(cutoff,)] = con.execute(
        f"SELECT max(h) FROM (SELECT {identity} AS h FROM features WHERE split = 'train' ORDER BY h LIMIT $rows)",
        {"rows": settings.max_training_rows},
    ).fetchall()
    newest = "OR source_file = $newest" if retraining else ""
    return con.sql(
        f"SELECT {columns}, (len($files) - list_position($files, source_file))::INTEGER AS month_age, {identity} <= $cutoff AS in_sample "
        f"FROM features WHERE split = 'train' AND ({identity} <= $cutoff {newest}) ORDER BY {identity}",
        params={"files": train_files, "cutoff": cutoff, **({"newest": train_files[-1]} if retraining else {})},
    ).to_arrow_table().to_pandas()


def _train_and_register(context: dg.AssetExecutionContext, settings: PipelineSettings, mlflow) -> dg.MaterializeResult:
    from mlops_assets import training  # scikit-learn costs seconds to import; only this step needs it

    warehouse: DuckDBResource = context.resources.warehouse
    columns = ", ".join(contract.MODEL_FEATURES + (contract.TARGET,))
    with warehouse.get_connection() as con:
        admitted = _admitted_file(con)
        order = [name for name, _ in _window(con)]
        files_in_window = sorted(
            (r[0] for r in con.execute("SELECT DISTINCT source_file FROM features").fetchall()),
            key=lambda f: (order.index(f), f) if f in order else (-1, f),
        )
        with_train_rows = {r[0] for r in con.execute("SELECT DISTINCT source_file FROM features WHERE split = 'train'").fetchall()}
        train_files = [f for f in files_in_window if f in with_train_rows]
        test_file = con.execute("SELECT any_value(source_file) FROM features WHERE split = 'test'").fetchall()[0][0]
        train_available = con.execute("SELECT count(*) FROM features WHERE split = 'train'").fetchall()[0][0]
        train = _load_training_rows(con, settings, columns, train_files, retraining=bool(admitted))
        test = con.sql(f"SELECT {columns} FROM features WHERE split = 'test'").to_arrow_table().to_pandas()
        window = con.execute("SELECT file_name, sha256, rows FROM training_window").df() if table_exists(con, "training_window") else None
        current = current_champion(con)
    test_target = test.pop(contract.TARGET).to_numpy()
    test_inputs = training.model_inputs(test)
    candidates = training.candidate_training_sets(
        train["month_age"].to_numpy(), train["in_sample"].to_numpy(), retraining=bool(admitted), min_rows=settings.min_candidate_rows,
        max_rows=settings.max_training_rows, recency_half_life=settings.recency_half_life, seed=settings.random_seed,
    )
    train_target = train[contract.TARGET].to_numpy()
    results = []
    for candidate in candidates:
        result = training.fit_candidate(candidate, train, train_target, test_inputs, test_target, settings.random_seed)
        results.append(result)
        context.log.info(f"candidate {candidate.name}: ROC AUC {result.metrics['roc_auc']:.4f} on the evaluation rows")
    winner, candidate_reason = training.choose_winner(results)
    pipeline, probability, metrics = winner.pipeline, winner.probability, winner.metrics
    threshold = training.decision_threshold(probability)
    calibration = training.calibration_error(test_target, probability)
    estimated_auc = training.expected_roc_auc(probability)

    champion_auc = None
    if current is not None:
        champion_pipeline = model_registry.deserialize(current.pipeline_skops)
        champion_auc = training.evaluate(test_target, champion_pipeline.predict_proba(test_inputs)[:, 1])["roc_auc"]
    decision = training.promotion_decision(
        metrics["roc_auc"], champion_auc, auc_floor=settings.auc_floor, tolerance=settings.promotion_tolerance
    )
    evaluation = (
        f"held-out {settings.holdout_share:.0%} of {test_file} ({len(test):,} rows)" if admitted
        else f"out-of-time month {test_file} ({len(test):,} rows)"
    )
    data = _model_data(settings, window, train_files, test_file, admitted, len(test))

    candidate_rows = []
    for result in results:
        candidate = result.candidate
        run_id = model_registry.log_candidate(
            mlflow,
            candidate.name,
            {"description": candidate.description, "train_rows": len(candidate.rows), "weighted": candidate.sample_weight is not None,
             "evaluation": evaluation},
            result.metrics,
        )
        candidate_rows.append(
            {
                "candidate": candidate.name,
                "description": candidate.description,
                "train_rows": len(candidate.rows),
                "weighted": candidate.sample_weight is not None,
                "roc_auc": result.metrics["roc_auc"],
                "top_decile_lift": result.metrics["top_decile_lift"],
                "calibration_error": training.calibration_error(test_target, result.probability),
                "won": result is winner,
                "mlflow_run_id": run_id,
            }
        )
    model_registry.log_data_files(mlflow, [d for d in data if d["role"] == "train"], context="training")
    model_registry.log_data_files(mlflow, [d for d in data if d["role"] == "evaluation"], context="evaluation")
    logged = model_registry.log_and_register(
        mlflow,
        pipeline,
        registered_model_name=settings.registered_model_name,
        params={
            **{f"hgb_{k}": v for k, v in pipeline.named_steps["classifier"].get_params().items()},
            "n_iter": pipeline.named_steps["classifier"].n_iter_,
            "candidate": winner.candidate.name,
            "training_files": ",".join(files_in_window),
            "evaluation": evaluation,
            "train_rows": len(winner.candidate.rows),
            "train_rows_available": train_available,
            "test_rows": len(test),
        },
        metrics={**metrics, "decision_threshold": threshold, "calibration_error": calibration, "estimated_auc": estimated_auc},
        input_example=test_inputs.head(5),
        output_example=probability[:5],
    )
    mlflow.set_tags({"gate_passed": str(decision.promote), "promotion_reason": decision.reason, "candidate": winner.candidate.name})
    with warehouse.get_connection() as con:
        record_model(
            con,
            {
                "version": logged.version,
                "run_id": logged.run_id,
                "model_uri": logged.model_uri,
                **metrics,
                "decision_threshold": threshold,
                "champion_auc_same_data": champion_auc,
                "training_files": files_in_window,
                "test_file": test_file,
                "train_rows": len(winner.candidate.rows),
                "test_rows": len(test),
                "trained_at": dt.datetime.now(),
                "promoted": False,
                "promotion_reason": decision.reason,
                "pipeline_skops": model_registry.serialize(pipeline),
                "gate_passed": decision.promote,
                "candidate": winner.candidate.name,
                "candidate_reason": candidate_reason,
                "evaluation": evaluation,
                "evaluation_sha256": next(d["sha256"] for d in data if d["role"] == "evaluation"),
                "estimated_auc": estimated_auc,
                "calibration_error": calibration,
            },
            candidates=candidate_rows,
            data=[{k: d[k] for k in ("role", "file_name", "sha256", "rows")} for d in data],
            evaluation_scores=pd.DataFrame({"probability": probability}),
        )
        if admitted and not decision.promote:
            record_retraining_outcome(
                con, admitted, f"challenger v{logged.version} ({winner.candidate.name}) not promoted: {decision.reason}"
            )
    context.log.info(f"model version {logged.version} ({candidate_reason}): {decision.reason}")
    return dg.MaterializeResult(
        metadata={
            **{name: dg.MetadataValue.float(value) for name, value in metrics.items()},
            "model_version": logged.version,
            "mlflow_run_id": logged.run_id,
            "mlflow_tracking_uri": settings.tracking_uri,
            "model_uri": logged.model_uri,
            "candidate": winner.candidate.name,
            "candidate_reason": candidate_reason,
            "candidates": dg.MetadataValue.md(
                markdown_table(pd.DataFrame(candidate_rows)[["candidate", "train_rows", "weighted", "roc_auc", "top_decile_lift", "won"]])
            ),
            "evaluation": evaluation,
            "gate_passed": decision.promote,
            "promotion_reason": decision.reason,
            "champion_auc_same_data": dg.MetadataValue.float(champion_auc) if champion_auc is not None else None,
            "decision_threshold": threshold,
            "calibration_error": dg.MetadataValue.float(calibration),
            "estimated_auc": dg.MetadataValue.float(estimated_auc),
            "training_files": files_in_window,
            "data_sha256": {f"{d['role']}:{d['file_name']}": d["sha256"] for d in data},
            "train_rows": f"{len(winner.candidate.rows):,} ({winner.candidate.description}) of {train_available:,}",
        }
    )


def _model_data(
    settings: PipelineSettings, window: pd.DataFrame | None, train_files: list[str], test_file: str, admitted: str | None, test_rows: int
) -> list[dict]:
    """Content hashes of what a version learned from and was evaluated on. A held-out part is
    identified by its file's hash and the split that drew it (share, seed)."""
    hashes = {} if window is None else {r.file_name: (r.sha256, r.rows) for r in window.itertuples()}
    uri = {name: (settings.training_dir / name).as_uri() for name in hashes}
    data = [
        {"role": "train", "file_name": f, "sha256": hashes.get(f, ("unknown", 0))[0], "rows": hashes.get(f, ("", 0))[1], "uri": uri.get(f, f)}
        for f in train_files
    ]
    sha = hashes.get(test_file, ("unknown", 0))[0]
    if admitted:
        import hashlib

        sha = hashlib.sha256(f"{sha}:held_out:{settings.holdout_share}:{settings.random_seed}".encode()).hexdigest()
    data.append({"role": "evaluation", "file_name": test_file, "sha256": sha, "rows": test_rows, "uri": uri.get(test_file, test_file)})
    return data


def record_retraining_outcome(con, admitted_file: str, outcome: str) -> None:
    """Say in the triggering batch's `drift_history` row what its retraining came to, and what the
    next batches are judged against."""
    if not table_exists(con, "drift_history"):
        return
    reference = "the current champion's evaluation data"
    if table_exists(con, "champion"):
        rows = con.execute("SELECT version, reference FROM champion ORDER BY promoted_at DESC LIMIT 1").fetchall()
        if rows:
            reference = f"champion v{rows[0][0]}'s evaluation data: {rows[0][1]}"
    con.execute(
        "UPDATE drift_history SET retraining_outcome = ? WHERE batch = ?",
        [f"{outcome}; next batches are judged against {reference}", Path(admitted_file).stem],
    )


@dg.asset(group_name=GROUP, pool="duckdb", kinds={"mlflow", "duckdb"}, deps=[model], output_required=False)
def champion(context: dg.AssetExecutionContext, settings: PipelineSettings, warehouse: DuckDBResource):
    """The model version that scores batches. Materialized only when the newest `model` passed the
    promotion gate: MLflow's `champion` alias and the warehouse's `champion` row change together, and
    the drift and score references become the rows this version was evaluated on (the newest data
    it knows), so a month like the one it learned is not flagged again. As the training run's last
    step it also moves the training folders to the window the run loaded (a retraining's batch in,
    the oldest extract to the archive), whether or not the challenger won."""
    with warehouse.get_connection() as con:
        version, gate_passed, promoted, candidate, reason, evaluation, test_rows = con.execute(
            "SELECT version, gate_passed, promoted, candidate, promotion_reason, evaluation, test_rows "
            "FROM model ORDER BY version DESC LIMIT 1"
        ).fetchall()[0]
        previous = current_champion(con)
        window = _window(con)
        admitted = next((name for name, is_admitted in window if is_admitted), None)
        promote_now = bool(gate_passed) and not promoted
        if promote_now:
            _promote(context, settings, con, previous, {
                "version": version, "candidate": candidate, "reason": reason, "reference": evaluation,
                "reference_rows": test_rows, "promoted_at": dt.datetime.now(), "dagster_run_id": context.run.run_id,
            })
        else:
            context.log.info(f"model version {version} is not promoted: {reason}")
        if admitted:
            in_window = {name for name, _ in window}
            leaving = [p.name for p in window_files(settings.training_dir) if p.name not in in_window]
            archived = commit(settings.training_dir, settings.archive_dir, settings.staging_dir / admitted, leaving)
            context.log.info(f"training folder now holds the run's window; admitted {admitted}, archived {archived or 'nothing'}")
            if promote_now:
                record_retraining_outcome(con, admitted, f"challenger v{version} ({candidate}) promoted: {reason}; batch rescored by it")
            elif not promoted:
                record_retraining_outcome(
                    con, admitted, f"challenger v{version} ({candidate}) not promoted: {reason}; {admitted} joined the training window"
                )
    if promote_now:
        yield dg.MaterializeResult(
            metadata={
                "model_version": version,
                "previous_champion": previous.version if previous else "none",
                "candidate": candidate,
                "promotion_reason": reason,
                "drift_reference": f"{evaluation}: what batches are judged against from now on",
                "reference_rows": test_rows,
                "retrained_for": Path(admitted).stem if admitted else "none (ordinary training)",
            }
        )


def _promote(context, settings: PipelineSettings, con, previous, row: dict) -> None:
    """Champion row, references and MLflow alias in one transaction; the alias is put back if the
    transaction cannot commit."""
    published = []

    def publish() -> None:
        model_registry.promote(settings.tracking_uri, settings.registered_model_name, row["version"])
        published.append(row["version"])

    try:
        promote(con, row, list(contract.MODEL_FEATURES), publish)
    except BaseException:
        if published:
            model_registry.restore_alias(settings.tracking_uri, settings.registered_model_name, previous and previous.version)
        raise
    context.log.info(f"model version {row['version']} is the champion: {row['reason']}")
