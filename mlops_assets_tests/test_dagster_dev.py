"""End to end under `dagster dev`: a file dropped into the inference folder gets scored by the sensor."""

import os
import shutil
import time

import dagster as dg
import duckdb
import pyarrow.csv as pa_csv
import pytest

from mlops_assets.sample_data import generate_month
from mlops_assets_tests.dagster_dev import running_dagster_dev, wait_for
from mlops_assets_tests.test_cli import cli_env

pytestmark = pytest.mark.slow


def test_a_dropped_file_is_scored_by_the_sensor(tmp_path, trained):
    data = tmp_path / "data"
    shutil.copytree(trained.settings.data_dir, data, ignore=shutil.ignore_patterns("p5_extrac.csv"))
    env = cli_env(data, tmp_path / "dagster_home")
    extract = generate_month(5, 5_000, seed=17, with_target=False)
    with running_dagster_dev(env, tmp_path / "dagster_dev.log"):
        staging = data / "raw" / "inference" / ".p5_extrac.csv.tmp"
        pa_csv.write_csv(extract.table, staging)
        dropped = time.monotonic()
        os.replace(staging, data / "raw" / "inference" / "p5_extrac.csv")  # an atomic drop

        def both_materialized():
            with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
                done = {
                    name: "p5_extrac" in instance.get_materialized_partitions(dg.AssetKey(name))
                    for name in ("predictions", "business_value")
                }
            return all(done.values())

        wait_for(both_materialized, timeout=240, interval=1, what="predictions and business_value of p5_extrac")
        seconds = time.monotonic() - dropped
    print(f"file drop -> both assets materialized under dagster dev: {seconds:.1f} s")
    with duckdb.connect(str(data / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("SELECT batch, count(*) FROM business_value GROUP BY 1").fetchall() == [("p5_extrac", 5_000)]
