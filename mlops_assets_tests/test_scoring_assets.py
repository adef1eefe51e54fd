"""Scoring for real: batches in DuckDB, the champion from MLflow, bad files set aside."""

import re
import shutil

import dagster as dg
import pytest

from mlops_assets.sample_data import generate_month, write_extract
from mlops_assets_tests.conftest import TEST_ROWS, failure_text, make_settings, score_batch, sql, table_snapshot



@pytest.fixture(scope="module")
def instance():
    with dg.instance_for_test() as test_instance:
        yield test_instance


@pytest.fixture(scope="module")
def scored(trained, tmp_path_factory, instance):
    """A copy of the trained folder with p5 scored: the earlier batch every bad file must leave intact."""
    data = tmp_path_factory.mktemp("scored") / "data"
    shutil.copytree(trained.settings.data_dir, data)
    settings = make_settings(data)
    result = score_batch(settings, instance, "p5_extrac")
    assert result.success, failure_text(result)
    return settings


def test_a_batch_is_scored_valued_and_logged(scored):
    assert sql(scored, "SELECT batch, count(*), count(DISTINCT key_value), min(model_version), max(model_version) FROM predictions GROUP BY 1") == [
        ("p5_extrac", TEST_ROWS, TEST_ROWS, 1, 1)
    ]
    [(share_flagged, threshold)] = sql(scored, "SELECT avg(predicted_label::INT), any_value(decision_threshold) FROM predictions")
    assert 0.05 < share_flagged < 0.2 and threshold < 0.5  # the top-decile cut-off of the training test month
    groups = sql(scored, "SELECT execution_group, count(*), min(business_value), max(business_value) FROM business_value GROUP BY 1 ORDER BY 1")
    assert [g for g, *_ in groups] == list(range(1, 11)) and {n for _, n, *_ in groups} == {TEST_ROWS // 10}
    assert all(groups[i][2] >= groups[i + 1][3] for i in range(9))  # group 1 holds the highest values
    [(rows, read, rejected, version, sha)] = sql(scored, "SELECT rows_scored, rows_read, rows_rejected, model_version, content_sha256 FROM inference_log")
    assert (rows, read, rejected, version, len(sha)) == (TEST_ROWS, TEST_ROWS, 0, 1, 64)
    # the stored value follows the formula from the stored inputs
    [(max_error,)] = sql(
        scored,
        "SELECT max(abs(business_value - probability * prob_value_contact * ln(greatest(coalesce(monto, 1), 1)))) FROM business_value",
    )
    assert max_error < 1e-9


def test_two_batches_keep_their_own_rows_and_rescoring_replaces_only_one(scored, instance, tmp_path):
    write_extract(generate_month(6, 3_000, seed=12), scored.inference_dir)
    assert score_batch(scored, instance, "p6_extrac").success
    before_p6 = sql(scored, "SELECT count(*), sum(hash(key_value, probability)) FROM predictions WHERE batch = 'p6_extrac'")
    assert sql(scored, "SELECT batch, count(*), min(model_version) FROM predictions GROUP BY 1 ORDER BY 1") == [
        ("p5_extrac", TEST_ROWS, 1),
        ("p6_extrac", 3_000, 1),
    ]
    assert score_batch(scored, instance, "p5_extrac").success  # rescore the first batch
    assert sql(scored, "SELECT count(*), sum(hash(key_value, probability)) FROM predictions WHERE batch = 'p6_extrac'") == before_p6
    assert sql(scored, "SELECT batch, count(*) FROM business_value GROUP BY 1 ORDER BY 1") == [("p5_extrac", TEST_ROWS), ("p6_extrac", 3_000)]
    assert sql(scored, "SELECT batch, count(*) FROM inference_log GROUP BY 1 ORDER BY 1")[0] == ("p5_extrac", 2)


def _small_extract(settings, name, month=7, rows=1_000, drift="none"):
    month_data = generate_month(month, rows, seed=13, drift=drift, with_target=False)
    path = write_extract(month_data, settings.inference_dir)
    return path.rename(path.with_name(f"{name}.csv"))


def _edit(path, transform):
    lines = path.read_text().splitlines()
    path.write_text("\n".join(transform(lines)) + "\n")


def _column_edit(column, value, every):
    def transform(lines):
        cells = [line.split(",") for line in lines]
        index = [h.strip('"') for h in cells[0]].index(column)
        for i, row in enumerate(cells[1:]):
            if i % every == 0:
                row[index] = value
        return [",".join(c) for c in cells]

    return transform


def _without(column):
    def transform(lines):
        cells = [line.split(",") for line in lines]
        index = [h.strip('"') for h in cells[0]].index(column)
        return [",".join(c[:index] + c[index + 1 :]) for c in cells]

    return transform


REJECTED_CASES = {
    "missing_column": (lambda p: _edit(p, _without("ingreso_neto")), r"missing required column\(s\) ingreso_neto"),
    "much_garbage": (lambda p: _edit(p, _column_edit("tea", "12%", 3)), r"non-numeric values in numeric column\(s\) tea \(334 of 1000"),
    "empty_file": (lambda p: p.write_bytes(b""), r"file is empty"),
    "header_only": (lambda p: _edit(p, lambda lines: lines[:1]), r"header but no data rows"),
    "truncated_last_line": (lambda p: p.write_bytes(p.read_bytes()[:-150]), r"different number of fields than the header \(line \d+\)"),
    "non_utf8": (lambda p: p.write_bytes(p.read_bytes().replace(b",DNI,", b",D\xd1I,", 1)), r"not valid UTF-8 \(at byte \d+\)"),
}


@pytest.mark.parametrize("case", list(REJECTED_CASES))
def test_a_bad_file_is_rejected_with_its_reason_and_nothing_changes(scored, instance, case):
    breakage, message = REJECTED_CASES[case]
    batch = f"p9_{case}"
    path = _small_extract(scored, batch)
    breakage(path)
    before = {t: table_snapshot(scored.warehouse_file, t) for t in ("predictions", "business_value", "inference_log")}
    result = score_batch(scored, instance, batch)
    assert not result.success
    text = failure_text(result)
    assert re.search(rf"{batch}\.csv: .*{message}", text), text
    assert not path.exists()
    rejected = scored.inference_dir / "rejected" / path.name
    assert rejected.is_file()
    reason = rejected.with_name(path.name + ".reason.txt").read_text()
    assert re.search(message, reason), reason
    for table, snapshot in before.items():
        assert table_snapshot(scored.warehouse_file, table) == snapshot, f"{table} changed"


def _metadata(result, asset):
    [materialization] = result.asset_materializations_for_node(asset)
    return {k: v.value for k, v in materialization.metadata.items()}


def test_extra_column_is_ignored_with_a_warning(scored, instance):
    path = _small_extract(scored, "p9_extra")
    _edit(path, lambda lines: [lines[0] + ',"comentario"'] + [line + ",hola" for line in lines[1:]])
    result = score_batch(scored, instance, "p9_extra")
    assert result.success, failure_text(result)
    assert _metadata(result, "predictions")["ignored_extra_columns"] == ["comentario"]
    assert sql(scored, "SELECT count(*) FROM predictions WHERE batch = 'p9_extra'") == [(1_000,)]


def test_unseen_category_is_scored_and_counted(scored, instance):
    path = _small_extract(scored, "p9_unseen", drift="categorical_mix")
    result = score_batch(scored, instance, "p9_unseen")
    assert result.success, failure_text(result)
    unseen = _metadata(result, "predictions")["unseen_categories"]
    expected = sum(1 for line in path.read_text().splitlines() if line.endswith(",FALABELLA"))
    assert unseen["FALABELLA"] == expected > 0
    assert sql(scored, "SELECT unseen_category_rows FROM inference_log WHERE batch = 'p9_unseen'") == [(sum(unseen.values()),)]


def test_a_little_garbage_is_nulled_counted_and_scored(scored, instance):
    path = _small_extract(scored, "p9_garbage")
    _edit(path, _column_edit("tea", "N/D", 200))
    result = score_batch(scored, instance, "p9_garbage")
    assert result.success, failure_text(result)
    assert _metadata(result, "predictions")["non_numeric_values_nulled"] == {"tea": 5}
    assert sql(scored, "SELECT count(*), values_nulled FROM predictions JOIN inference_log USING (batch) WHERE batch = 'p9_garbage' GROUP BY ALL") == [(1_000, 5)]


def test_duplicate_keys_keep_the_first_row_and_are_counted(scored, instance):
    path = _small_extract(scored, "p9_dupes")
    _edit(path, lambda lines: lines + lines[1:4])
    result = score_batch(scored, instance, "p9_dupes")
    assert result.success, failure_text(result)
    assert _metadata(result, "predictions")["rows_rejected"] == 3
    assert sql(scored, "SELECT count(*), count(DISTINCT key_value) FROM predictions WHERE batch = 'p9_dupes'") == [(1_000, 1_000)]
    assert sql(scored, "SELECT rows_read, rows_scored, rows_rejected FROM inference_log WHERE batch = 'p9_dupes'") == [(1_003, 1_000, 3)]
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {"scored_exactly_once": True, "probabilities_in_unit_interval": True, "business_value_never_nan": True}


def test_a_batch_file_with_an_upper_case_extension_is_scored_under_its_key(trained, tmp_path):
    """`p11_extrac.CSV` is batch p11_extrac for the sensor and for every asset (it used to fail with 'does not exist')."""
    data = tmp_path / "data"
    shutil.copytree(trained.settings.data_dir, data)
    settings = make_settings(data)
    path = write_extract(generate_month(11, 2_000, seed=5, with_target=False), settings.inference_dir)
    path.rename(path.with_name("p11_extrac.CSV"))
    with dg.instance_for_test() as instance:
        result = score_batch(settings, instance, "p11_extrac", assets=None)
    assert result.success, failure_text(result)
    assert sql(settings, "SELECT count(*) FROM business_value WHERE batch = 'p11_extrac'") == [(2_000,)]
    assert sql(settings, "SELECT file_name FROM inference_log WHERE batch = 'p11_extrac'") == [("p11_extrac.CSV",)]
    assert sql(settings, "SELECT count(*) FROM drift_history WHERE batch = 'p11_extrac'") == [(1,)]
