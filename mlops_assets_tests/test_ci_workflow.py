"""The shipped GitHub Actions workflow, run step by step as a runner would (its `uses:` steps are
GitHub's checkout, Python setup and artifact upload, which a clone and this venv stand in for)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
WORKFLOW = REPO / ".github" / "workflows" / "pipeline.yml"


def checkout(target: Path) -> Path:
    """The repository's tracked files, with this venv in place of a fresh install."""
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        if (REPO / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, target / name)  # modification times kept: make sees the venv is up to date
    (target / ".venv").symlink_to(Path(sys.prefix))
    if subprocess.run(["make", "-q", ".venv/.installed"], cwd=target).returncode != 0:
        pytest.fail("the venv is older than the lock file: run `make .venv/.installed` first")
    return target


def run_steps(workdir: Path, tmp_path: Path) -> list[str]:
    """Every `run:` step of the workflow in order, with $GITHUB_ENV and $GITHUB_PATH honoured."""
    github_env, github_path = tmp_path / "github_env", tmp_path / "github_path"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "MLFLOW_TRACKING", "DAGSTER_HOME"))}
    env.update(GITHUB_ENV=str(github_env), GITHUB_PATH=str(github_path), CI="true")
    ran = []
    for step in yaml.safe_load(WORKFLOW.read_text())["jobs"]["materialize"]["steps"]:
        if "run" not in step:
            continue
        github_env.write_text("")
        github_path.write_text("")
        done = subprocess.run(["bash", "-eo", "pipefail", "-c", step["run"]], cwd=workdir, env=env,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"step {step['name']!r} failed:\n{done.stderr[-3000:]}"
        env.update(line.split("=", 1) for line in github_env.read_text().splitlines() if "=" in line)
        for folder in github_path.read_text().splitlines():
            env["PATH"] = f"{folder}{os.pathsep}{env['PATH']}"
        ran.append(step["name"])
    return ran


@pytest.mark.slow
def test_the_ci_workflow_trains_and_scores_with_commands_alone(tmp_path):
    workdir = checkout(tmp_path / "checkout")
    ran = run_steps(workdir, tmp_path)
    assert [name.split()[0] for name in ran] == ["Install", "A", "Generate", "Train", "Score"]
    data = workdir / "data"
    with duckdb.connect(str(data / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("SELECT version, promoted FROM model").fetchall() == [(1, True)]
        assert con.execute("SELECT batch, count(*) FROM predictions GROUP BY 1").fetchall() == [("p5_extrac", 20_000)]
        assert con.execute("SELECT count(*) FROM business_value WHERE batch = 'p5_extrac'").fetchall() == [(20_000,)]
        assert con.execute("SELECT batch, champion_version FROM drift_history").fetchall() == [("p5_extrac", 1)]
    assert (data / "monitoring_reports" / "p5_extrac").is_dir()  # what the artifact step uploads
