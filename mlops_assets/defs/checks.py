"""Asset checks: what must hold before anything downstream trusts an asset."""


import dagster as dg
from dagster_duckdb import DuckDBResource

from mlops_assets import contract, model_registry
from mlops_assets.defs.assets.training import champion, model, raw_training
from mlops_assets.warehouse import champion as current_champion
from mlops_assets.settings import PipelineSettings

TARGET_RATE_BOUNDS = (0.001, 0.30)
"""A cross-sell label outside these rates means a broken extract (or a changed label definition)."""


@dg.asset_check(asset=raw_training, blocking=True, pool="duckdb")
def raw_training_matches_contract(warehouse: DuckDBResource) -> dg.AssetCheckResult:
    """All 69 contract columns with their types, rows present, `key_value` unique within each file."""
    with warehouse.get_connection() as con:
        types = dict(con.execute("SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'raw_training'").fetchall())
        rows, duplicates = con.execute(
            "SELECT count(*), count(*) - count(DISTINCT (source_file, key_value)) FROM raw_training"
        ).fetchall()[0]
    wrong = {c: types.get(c) for c, kind in contract.COLUMN_TYPES.items() if types.get(c) != kind}
    return dg.AssetCheckResult(
        passed=not wrong and rows > 0 and duplicates == 0,
        metadata={"rows": rows, "duplicate_keys": duplicates, "columns_missing_or_mistyped": str(wrong or "none")},
    )


@dg.asset_check(asset=raw_training, pool="duckdb")
def target_rate_is_plausible(warehouse: DuckDBResource) -> dg.AssetCheckResult:
    """Per file positive rate within the bounds a few-percent cross-sell label can have."""
    with warehouse.get_connection() as con:
        rates = dict(con.execute("SELECT source_file, avg(target) FROM raw_training GROUP BY ALL ORDER BY 1").fetchall())
    low, high = TARGET_RATE_BOUNDS
    outside = {f: r for f, r in rates.items() if not low <= r <= high}
    return dg.AssetCheckResult(
        passed=not outside,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"positive_rate_per_file": {f: round(r, 5) for f, r in rates.items()}, "bounds": str(TARGET_RATE_BOUNDS)},
    )


@dg.asset_check(asset=model, blocking=True, pool="duckdb")
def model_auc_above_floor(settings: PipelineSettings, warehouse: DuckDBResource) -> dg.AssetCheckResult:
    """The newest model's out-of-time ROC AUC is at least the configured floor."""
    with warehouse.get_connection() as con:
        version, auc = con.execute("SELECT version, roc_auc FROM model ORDER BY version DESC LIMIT 1").fetchall()[0]
    return dg.AssetCheckResult(
        passed=auc >= settings.auc_floor,
        metadata={"model_version": version, "roc_auc": auc, "auc_floor": settings.auc_floor},
    )


@dg.asset_check(asset=champion, blocking=True, pool="duckdb")
def champion_matches_mlflow_alias(settings: PipelineSettings, warehouse: DuckDBResource) -> dg.AssetCheckResult:
    """The version the warehouse scores with is the one MLflow's `champion` alias names."""
    with warehouse.get_connection() as con:
        current = current_champion(con)
    alias = model_registry.alias_version(settings.tracking_uri, settings.registered_model_name)
    warehouse_version = current.version if current else None
    return dg.AssetCheckResult(
        passed=warehouse_version is not None and warehouse_version == alias,
        metadata={"warehouse_champion": str(warehouse_version), "mlflow_champion_alias": str(alias)},
    )
