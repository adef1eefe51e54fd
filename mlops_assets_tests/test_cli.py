"""The real `dagster` CLI and the generator's CLI, as CI and users call them."""

import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb

from bench.run import environment
from mlops_assets_tests.conftest import TEST_REPORT_SAMPLE_ROWS, TEST_ROWS

REPO = Path(__file__).resolve().parents[1]


def cli_env(data_dir: Path, dagster_home: Path) -> dict[str, str]:
    """Environment for a subprocess: the project's settings pointed at temporary folders (the same
    one the benchmark gives its processes)."""
    return {**environment(data_dir, dagster_home), "MLOPS_REPORT_SAMPLE_ROWS": str(TEST_REPORT_SAMPLE_ROWS)}


def dagster_cli(*args: str, env: dict[str, str], timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout,
    )


def trained_deployment(folder: Path) -> tuple[Path, dict[str, str]]:
    """A data folder trained through the `dagster` CLI on the instance a `dagster dev` then uses
    (6,000-row months p1..p4, an empty inbox), and the environment for that instance."""
    from mlops_assets.sample_data import generate_extracts

    data = folder / "data"
    generate_extracts(data / "raw", rows=6_000, months=5, seed=13)
    (data / "raw" / "inference" / "p5_extrac.csv").unlink()
    env = cli_env(data, folder / "dagster_home")
    trained = dagster_cli("asset", "materialize", "-m", "mlops_assets.definitions", "--select", "raw_training,features,model,champion", env=env)
    assert trained.returncode == 0, trained.stderr[-3000:]
    return data, env


def test_sample_data_cli_writes_the_layout(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "mlops_assets.sample_data", "--rows", "300", "--months", "3", "--out", str(tmp_path / "raw"),
         "--drift", "numeric_shift", "--inference-labels"],
        capture_output=True, text=True, timeout=120, check=True,
    )
    assert "p3_extrac.csv" in done.stdout
    assert sorted(p.name for p in (tmp_path / "raw" / "training").iterdir()) == ["p1_extrac.csv", "p2_extrac.csv"]
    header = (tmp_path / "raw" / "inference" / "p3_extrac.csv").read_text().splitlines()[0]
    assert '"target"' in header


def test_dagster_asset_materialize_trains(tmp_path, sample_raw):
    data = tmp_path / "data"
    shutil.copytree(sample_raw, data / "raw")
    done = dagster_cli(
        "asset", "materialize", "-m", "mlops_assets.definitions", "--select", "raw_training,features,model,champion",
        env=cli_env(data, tmp_path / "dagster_home"),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    with duckdb.connect(str(data / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM raw_training").fetchall()[0][0] == 4 * TEST_ROWS
        assert con.execute("SELECT count(*) FROM features WHERE split = 'test'").fetchall()[0][0] == TEST_ROWS
        assert con.execute("SELECT version, promoted FROM model").fetchall() == [(1, True)]
    assert (data / "mlflow" / "mlflow.db").is_file()


def mlops_batches(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(Path(sys.executable).parent / "mlops-batches"), *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )


def test_dagster_asset_materialize_scores_a_partition_registered_from_the_command_line(tmp_path, trained):
    data = tmp_path / "data"
    shutil.copytree(trained.settings.data_dir, data)
    env = cli_env(data, tmp_path / "dagster_home")
    registered = mlops_batches("register", "p5_extrac", env=env)  # what the sensor does, without a daemon
    assert registered.returncode == 0 and registered.stdout.split() == ["p5_extrac"], registered.stderr
    done = dagster_cli(
        "asset", "materialize", "-m", "mlops_assets.definitions",
        "--select", "predictions,business_value", "--partition", "p5_extrac", env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    with duckdb.connect(str(data / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("SELECT batch, count(*) FROM predictions GROUP BY 1").fetchall() == [("p5_extrac", TEST_ROWS)]
        assert con.execute("SELECT count(DISTINCT execution_group) FROM business_value").fetchall() == [(10,)]

    # a batch with no file, or a name that cannot be a batch: refused before anything is registered
    missing = mlops_batches("register", "p6_extrac", env=env)
    assert missing.returncode == 2 and "no file for batch p6_extrac" in missing.stderr
    assert mlops_batches("register", "p 6.csv", env=env).returncode == 2
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        assert instance.get_dynamic_partitions("inference_batches") == ["p5_extrac"]

    # a wrongly shaped file: the command fails with the file and the reason on stderr, the file is
    # set aside with the reason, and the batch scored before is intact
    inbox = data / "raw" / "inference"
    (inbox / "p6_extrac.csv").write_text("key_value,monto\n1,100\n")
    assert mlops_batches("register", env=env).stdout.split() == ["p5_extrac", "p6_extrac"]  # every waiting file
    rejected = dagster_cli(
        "asset", "materialize", "-m", "mlops_assets.definitions",
        "--select", "predictions,business_value", "--partition", "p6_extrac", env=env,
    )
    assert rejected.returncode != 0
    assert "p6_extrac.csv: missing required column(s)" in rejected.stderr
    assert "missing required column(s)" in (inbox / "rejected" / "p6_extrac.csv.reason.txt").read_text()
    with duckdb.connect(str(data / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("SELECT batch, count(*) FROM predictions GROUP BY 1").fetchall() == [("p5_extrac", TEST_ROWS)]
