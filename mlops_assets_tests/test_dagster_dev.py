"""End to end under `dagster dev`: a file dropped into the inference folder gets scored by the
sensor, and the UI shows the graph and the assets' metadata in a real browser."""

import json
import os
import time
import urllib.request

import dagster as dg
import duckdb
import pyarrow.csv as pa_csv
import pytest

from mlops_assets.sample_data import generate_month, write_extract
from mlops_assets_tests.browser import chromium_page, save_screenshot
from mlops_assets_tests.dagster_dev import running_dagster_dev, wait_for
from mlops_assets_tests.test_cli import trained_deployment

pytestmark = pytest.mark.slow

BATCH_ASSETS = ("predictions", "business_value", "drift_report")


def _materialized(dagster_home: str, batch: str) -> bool:
    with dg.DagsterInstance.from_config(dagster_home) as instance:
        return all(batch in instance.get_materialized_partitions(dg.AssetKey(name)) for name in BATCH_ASSETS)


@pytest.fixture(scope="module")
def scored_under_dagster_dev(tmp_path_factory):
    """Trained with the `dagster` CLI on the instance `dagster dev` then uses (so the UI has the
    training assets' history too); p5, then a drifted p6, are dropped atomically once it runs.
    Yields (url, data folder, seconds from p5's drop to its assets)."""
    tmp_path = tmp_path_factory.mktemp("dagster_dev")
    data, env = trained_deployment(tmp_path)
    extract = generate_month(5, 5_000, seed=17, with_target=False)
    with running_dagster_dev(env, tmp_path / "dagster_dev.log") as url:
        staging = data / "raw" / "inference" / ".p5_extrac.csv.tmp"
        pa_csv.write_csv(extract.table, staging)
        dropped = time.monotonic()
        os.replace(staging, data / "raw" / "inference" / "p5_extrac.csv")  # an atomic drop
        wait_for(lambda: _materialized(env["DAGSTER_HOME"], "p5_extrac"), timeout=240, interval=1,
                 what="predictions, business_value and drift_report of p5_extrac")
        seconds = time.monotonic() - dropped
        write_extract(generate_month(6, 3_000, seed=18, drift="numeric_shift", with_target=False), data / "raw" / "inference")
        wait_for(lambda: _materialized(env["DAGSTER_HOME"], "p6_extrac"), timeout=240, interval=1,
                 what="the batch assets of p6_extrac")
        yield url, data, seconds


def test_a_dropped_file_is_scored_by_the_sensor(scored_under_dagster_dev):
    _, data, seconds = scored_under_dagster_dev
    print(f"file drop -> batch assets materialized under dagster dev: {seconds:.1f} s")
    with duckdb.connect(str(data / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("SELECT batch, count(*) FROM business_value GROUP BY 1 ORDER BY 1").fetchall() == [
            ("p5_extrac", 5_000), ("p6_extrac", 3_000)]


def _dismiss_first_run_dialog(url: str) -> None:
    request = urllib.request.Request(
        f"{url}/graphql", data=json.dumps({"query": "mutation { setNuxSeen }"}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert json.load(response) == {"data": {"setNuxSeen": True}}


def test_the_ui_shows_the_asset_groups_and_the_metadata_users_need(scored_under_dagster_dev, tmp_path):
    url, _, _ = scored_under_dagster_dev
    _dismiss_first_run_dialog(url)
    groups = {"training": ["raw_training", "features", "model", "champion"], "scoring": ["predictions", "business_value"],
              "monitoring": ["drift_report", "drift_report_html"]}
    with chromium_page(tmp_path / "profile") as page:
        page.goto(f"{url}/asset-groups")
        page.get_by_text("Global asset lineage").wait_for(timeout=60_000)
        for group in groups:
            page.get_by_text(group, exact=True).first.wait_for(timeout=30_000)
        save_screenshot(page, "dagster_asset_lineage")
        for group, assets in groups.items():
            page.goto(f"{url}/locations/mlops_assets.definitions/asset-groups/{group}")
            for asset in assets:
                page.get_by_text(asset, exact=True).first.wait_for(timeout=30_000)
            save_screenshot(page, f"dagster_group_{group}")

        pages = {
            "raw_training": ["Row count", "rows_per_file"],
            "model": ["roc_auc", "top_decile_lift", "mlflow_run_id", "promotion_reason"],
            "business_value": ["value_by_execution_group", "mean_value_per_customer", "execution group 1..10", "Row count"],
            "drift_report": ["drift_score", "top_drifted_columns", "html_report", "retraining", "realized_auc"],
        }
        for asset, labels in pages.items():
            page.goto(f"{url}/assets/{asset}")
            page.get_by_text(labels[0], exact=True).first.wait_for(timeout=60_000)
            if asset in ("business_value", "drift_report"):
                page.get_by_text("p6_extrac").first.wait_for(timeout=30_000)  # the latest materialization's partition
            text = page.inner_text("body")
            save_screenshot(page, f"dagster_asset_{asset}")
            missing = [label for label in labels if label not in text]
            assert not missing, f"{asset} page lacks {missing}"
        page.get_by_text("Plots", exact=True).click()  # numeric metadata across partitions: drift_score per batch
        page.locator("canvas").first.wait_for(timeout=30_000)
        save_screenshot(page, "dagster_drift_score_plot")
        assert "Asset plots are automatically generated" not in page.inner_text("body")
