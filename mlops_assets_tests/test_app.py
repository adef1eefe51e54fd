"""The campaign app, driven by Streamlit's AppTest against a warehouse a real pipeline run built,
and once in headless Chromium."""

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.csv as pa_csv
import pytest
from hypothesis import given, strategies as st
from streamlit.testing.v1 import AppTest

from mlops_assets.app import reader
from mlops_assets.app.upload import UploadRefused, safe_file_name
from mlops_assets.sample_data import generate_month, write_extract
from mlops_assets_tests.browser import chromium_page, save_screenshot
from mlops_assets_tests.conftest import WITHOUT_HTML_REPORT, failure_text, make_settings, score_batch, sql
from mlops_assets_tests.dagster_dev import background_process, free_port, responds, venv_command, wait_for

APP = Path(__file__).resolve().parents[1] / "mlops_assets" / "app" / "main.py"
DRIFTED_BATCH, FIRST_BATCH = "p6_extrac", "p5_extrac"


@pytest.fixture(scope="module")
def app_data(trained, tmp_path_factory):
    """Two scored batches: p5 (with evidently's HTML report) and a drifted p6, scored after it."""
    data = tmp_path_factory.mktemp("app") / "data"
    shutil.copytree(trained.settings.data_dir, data)
    settings = make_settings(data)
    with dg.instance_for_test() as instance:
        result = score_batch(settings, instance, FIRST_BATCH, assets=None)
        assert result.success, failure_text(result)
        drifted = generate_month(6, 4_000, seed=23, drift="numeric_shift", with_target=False)
        write_extract(drifted, settings.inference_dir)
        result = score_batch(settings, instance, DRIFTED_BATCH, assets=WITHOUT_HTML_REPORT)
        assert result.success, failure_text(result)
    return settings


@pytest.fixture
def app(app_data, monkeypatch):
    monkeypatch.setenv("MLOPS_DATA_DIR", app_data.data_dir)
    app_test = AppTest.from_file(str(APP), default_timeout=60)
    app_test.run()
    assert not app_test.exception, app_test.exception
    return app_test


def _table_with(app_test, column: str):
    """The first table on the page with `column` (AppTest does not keep dataframe keys)."""
    return next(d.value for d in app_test.dataframe if column in d.value.columns)


def _metrics(app_test) -> dict[str, str]:
    return {m.label: m.value for m in app_test.metric}


def test_the_batch_picker_lists_scored_batches_newest_first_with_their_facts(app, app_data):
    assert app.selectbox(key="batch").options == [DRIFTED_BATCH, FIRST_BATCH]
    metrics = _metrics(app)
    (rows,) = sql(app_data, "SELECT count(*) FROM predictions WHERE batch = ?", [DRIFTED_BATCH])
    assert metrics["Rows scored"] == f"{rows[0]:,}"
    (drift_score,) = sql(app_data, "SELECT drift_score FROM drift_history WHERE batch = ?", [DRIFTED_BATCH])
    assert drift_score[0] > app_data.drift_threshold  # the generator shifted a third of the features
    assert metrics["drift_score"] == f"{drift_score[0]:.3f}"
    assert metrics["Realized AUC"] == "no labels"
    (estimated,) = sql(app_data, "SELECT estimated_auc FROM drift_history WHERE batch = ?", [DRIFTED_BATCH])
    assert metrics["Estimated AUC"] == f"{estimated[0]:.3f}"
    assert metrics["Model version"] == "v1"


def test_the_group_table_totals_equal_the_warehouse(app, app_data):
    app.selectbox(key="batch").select(FIRST_BATCH).run()
    table = _table_with(app, "total_value")
    expected = sql(
        app_data,
        "SELECT execution_group, count(*), sum(business_value) FROM business_value WHERE batch = ? GROUP BY 1 ORDER BY 1",
        [FIRST_BATCH],
    )
    assert [tuple(r) for r in table[["execution_group", "customers"]].itertuples(index=False)] == [(g, n) for g, n, _ in expected]
    assert table["total_value"].tolist() == pytest.approx([total for *_, total in expected], rel=1e-9)


@pytest.mark.parametrize("by", ["key_value", "codunicocli"])
def test_a_customer_lookup_finds_a_known_customer(app, app_data, by):
    (row,) = sql(
        app_data,
        f"SELECT {by}, business_value, execution_group FROM business_value WHERE batch = ? "
        "ORDER BY business_value DESC LIMIT 1",
        [DRIFTED_BATCH],
    )
    identifier, value, group = row
    app.text_input(key="customer").input(identifier).run()
    metrics = _metrics(app)
    assert metrics["Business value"] == f"{value:.4f}"
    assert metrics["Execution group"] == str(group) == "1"
    assert [s.value for s in app.success] == ["high priority: call first"]
    history = _table_with(app, "valued_at")
    (scored_in,) = sql(app_data, f"SELECT count(*) FROM business_value WHERE {by} = ?", [identifier])
    assert len(history) == scored_in[0] >= 1 and set(history[by]) == {identifier}


def test_an_unknown_customer_is_reported_not_crashed(app):
    app.text_input(key="customer").input("NO-SUCH-CUSTOMER").run()
    assert not app.exception
    assert "No scored customer" in app.info[0].value


def test_the_drift_tab_shows_the_top_drifted_columns_and_the_evidently_report(app, app_data):
    drifted = _table_with(app, "drifted")
    (drifted_count,) = sql(app_data, "SELECT count(*) FILTER (WHERE drifted) FROM drift_report WHERE batch = ?", [DRIFTED_BATCH])
    assert drifted["drifted"].all() and len(drifted) == min(10, drifted_count[0])
    assert any("No evidently HTML report" in i.value for i in app.info)  # p6 was scored without the HTML step
    performance = _table_with(app, "estimated_auc")
    expected = sql(app_data, "SELECT batch, estimated_auc, realized_auc FROM drift_history ORDER BY judged_at, batch")
    assert [(b, round(e, 9)) for b, e, _ in expected] == [(b, round(e, 9)) for b, e in zip(performance["batch"], performance["estimated_auc"])]
    assert performance["realized_auc"].isna().all()  # neither batch has labels yet: only the estimate
    app.selectbox(key="batch").select(FIRST_BATCH).run()
    assert any(str(app_data.reports_dir / FIRST_BATCH / "drift_report.html") in c.value for c in app.caption)


def test_the_call_center_download_holds_exactly_the_chosen_groups(app_data):
    with reader.open_warehouse(app_data.warehouse_file) as con:
        chosen = reader.customers(con, FIRST_BATCH, groups=[1, 2])
    (expected,) = sql(app_data, "SELECT count(*) FROM business_value WHERE batch = ? AND execution_group <= 2", [FIRST_BATCH])
    assert len(chosen) == expected[0] and set(chosen["execution_group"]) == {1, 2}
    assert chosen["business_value"].is_monotonic_decreasing


def _folder_state(settings) -> dict[str, bytes]:
    root = Path(settings.data_dir) / "raw"
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _upload(app_test, name: str, content: bytes, replace: bool = False):
    app_test.file_uploader(key="upload_file").upload(name, content, "text/csv")
    app_test.checkbox(key="upload_replace").set_value(replace)
    app_test.run()
    app_test.button(key="upload_button").click().run()
    assert not app_test.exception, app_test.exception


def test_an_invalid_upload_is_refused_and_writes_nothing(app, app_data):
    valid = (Path(app_data.inference_dir) / f"{FIRST_BATCH}.csv").read_bytes()
    before = _folder_state(app_data)
    truncated = valid[: len(valid) // 2]
    _upload(app, "p9_extrac.csv", truncated)
    assert "p9_extrac.csv was refused and not written" in app.error[0].value
    assert "truncated, half-written or malformed" in app.error[0].value
    without_monto = pa.BufferOutputStream()
    pa_csv.write_csv(generate_month(9, 50, seed=5, with_target=False).table.drop_columns(["monto"]), without_monto)
    _upload(app, "p9_extrac.csv", without_monto.getvalue().to_pybytes())
    assert "missing required column(s) monto" in app.error[0].value
    assert _folder_state(app_data) == before


def test_a_valid_upload_lands_in_the_inference_folder_under_a_safe_name(app, app_data):
    content = (Path(app_data.inference_dir) / f"{FIRST_BATCH}.csv").read_bytes()
    target = app_data.inference_dir / "p9_extrac.csv"
    try:
        _upload(app, "../../p9 extrac.csv", content)
        assert target.read_bytes() == content
        assert "The inference sensor will score it as batch p9_extrac" in app.success[0].value
        assert not list((Path(app_data.data_dir) / "raw" / ".upload_staging").iterdir())

        _upload(app, "p9_extrac.csv", content[: len(content) // 2 + 1] + b"\n")  # same name, no replace
        assert "already exists" in app.error[0].value and target.read_bytes() == content
    finally:
        target.unlink(missing_ok=True)


@given(st.text(min_size=1, max_size=60))
def test_safe_file_names_never_leave_the_folder(name):
    try:
        safe = safe_file_name(name + ".csv")
    except UploadRefused:
        return
    assert "/" not in safe and "\\" not in safe and not safe.startswith(".")
    assert safe.endswith(".csv") and Path(safe).name == safe


def test_a_missing_or_busy_warehouse_is_explained(app_data, tmp_path, monkeypatch):
    monkeypatch.setenv("MLOPS_DATA_DIR", str(tmp_path / "empty"))
    missing = AppTest.from_file(str(APP), default_timeout=60).run()
    assert not missing.exception and "No warehouse at" in missing.warning[0].value

    monkeypatch.setenv("MLOPS_DATA_DIR", app_data.data_dir)
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import duckdb, sys, time
            con = duckdb.connect({app_data.warehouse_file!r})
            print("holding", flush=True)
            sys.stdin.read()
        """)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "holding"
        busy = AppTest.from_file(str(APP), default_timeout=60).run()
    finally:
        holder.communicate("")
    assert not busy.exception and "is busy" in busy.warning[0].value
    assert busy.file_uploader(key="upload_file")  # uploading still works while the warehouse is busy


@pytest.mark.slow
def test_the_running_app_renders_in_chromium(app_data, tmp_path):
    port = free_port()
    env = {**os.environ, "MLOPS_DATA_DIR": app_data.data_dir}
    args = [venv_command("python"), "-m", "mlops_assets.app", "--address", "127.0.0.1", "--port", str(port)]
    with background_process(args, env, tmp_path / "streamlit.log"):
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: responds(f"{url}/_stcore/health"), 60, what="streamlit")
        with chromium_page(tmp_path / "profile", height=1800) as page:
            page.goto(url)
            page.get_by_text("Business value per execution group").wait_for(timeout=60_000)
            page.get_by_text("Download").first.wait_for(timeout=30_000)
            text = page.inner_text("body")
            deploy_buttons = page.get_by_role("button", name="Deploy").count()
            main_menu = page.locator('[data-testid="stMainMenu"]').count()
            shot = save_screenshot(page, "campaign_app")
    assert f"Batch {DRIFTED_BATCH}" in text and "Rows scored" in text and "Realized AUC" in text
    assert deploy_buttons == 0 and main_menu == 0, "Streamlit's developer toolbar is showing"
    assert shot.stat().st_size > 20_000
