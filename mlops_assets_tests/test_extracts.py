"""Validation of extracts: every bad file gets an error naming the file and the problem."""

from pathlib import Path

import duckdb
import pytest

from mlops_assets import contract
from mlops_assets.extracts import ExtractError, check_extract, load_extract, load_extracts, loading
from mlops_assets.extracts.sql import typed_select
from mlops_assets.sample_data import generate_month, write_extract


@pytest.fixture
def con():
    with duckdb.connect() as connection:
        yield connection


@pytest.fixture
def extract(tmp_path) -> Path:
    return write_extract(generate_month(3, 500, seed=2), tmp_path)


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def _rewrite(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def _drop_column(path: Path, column: str) -> Path:
    lines = [line.split(",") for line in _lines(path)]
    index = [h.strip('"') for h in lines[0]].index(column)
    return _rewrite(path, [",".join(cells[:index] + cells[index + 1 :]) for cells in lines])


def _set_column(path: Path, column: str, value: str, every: int = 1) -> Path:
    lines = [line.split(",") for line in _lines(path)]
    index = [h.strip('"') for h in lines[0]].index(column)
    for i, cells in enumerate(lines[1:]):
        if i % every == 0:
            cells[index] = value
    return _rewrite(path, [",".join(cells) for cells in lines])


def test_a_clean_extract_passes(con, extract):
    check = check_extract(con, extract, with_target=True)
    assert check.rows == 500 and check.has_target and check.invalid_values == {}


def test_missing_column_names_file_and_column(con, extract):
    _drop_column(extract, "ingreso_neto")
    with pytest.raises(ExtractError, match=r"p3_extrac\.csv: missing required column\(s\) ingreso_neto"):
        check_extract(con, extract, with_target=False)


def test_target_is_required_for_training_only(con, extract):
    _drop_column(extract, "target")
    assert not check_extract(con, extract, with_target=False).has_target
    with pytest.raises(ExtractError, match="missing required column.*target"):
        check_extract(con, extract, with_target=True)


def test_extra_columns_are_reported_and_column_order_does_not_matter(con, extract, tmp_path):
    lines = [line.split(",") for line in _lines(extract)]
    reordered = [list(reversed(cells)) + ["x"] for cells in lines]
    reordered[0][-1] = "comentario"
    _rewrite(extract, [",".join(cells) for cells in reordered])
    check = check_extract(con, extract, with_target=True)
    assert check.extra_columns == ("comentario",)
    table = con.execute(typed_select([check], dedupe=False)).fetch_df()
    assert list(table.columns) == list(contract.ALL_COLUMNS) + ["source_file"]
    assert table["source_file"].unique().tolist() == ["p3_extrac.csv"]


def test_a_little_garbage_is_nulled_and_counted(con, extract):
    _set_column(extract, "tea", "n/a", every=250)  # 2 of 500 rows
    check = check_extract(con, extract, with_target=True)
    assert check.invalid_values == {"tea": 2}
    table = con.execute(typed_select([check], dedupe=False)).fetch_df()
    assert table["tea"].isna().sum() >= 2 and str(table["tea"].dtype) == "float64"


def test_much_garbage_rejects_the_file_naming_the_column(con, extract):
    _set_column(extract, "tea", "12,5%".replace(",", ";"), every=2)
    with pytest.raises(ExtractError, match=r"p3_extrac\.csv: non-numeric values in numeric column\(s\) tea \(250 of 500"):
        check_extract(con, extract, with_target=True)


def test_labels_must_be_binary(con, extract):
    _set_column(extract, "target", "2", every=100)
    with pytest.raises(ExtractError, match="5 row.*target.*not 0 or 1"):
        check_extract(con, extract, with_target=True)


def test_rows_without_a_key_reject_the_file_instead_of_collapsing_into_one(con, extract):
    """A null key_value used to count as a duplicate of the other null keys: all but one such row
    vanished silently. A row without its key cannot be traced, so the file is refused."""
    _set_column(extract, "key_value", "", every=50)
    with pytest.raises(ExtractError, match=r"p3_extrac\.csv: 10 row\(s\) have no key_value"):
        check_extract(con, extract, with_target=True)
    with pytest.raises(ExtractError, match="have no key_value"):
        load_extract(con, extract, with_target=True)


def test_empty_file(con, tmp_path):
    path = tmp_path / "p9_extrac.csv"
    path.write_bytes(b"")
    with pytest.raises(ExtractError, match=r"p9_extrac\.csv: file is empty"):
        check_extract(con, path, with_target=False)


def test_header_only(con, extract):
    _rewrite(extract, _lines(extract)[:1])
    with pytest.raises(ExtractError, match="header but no data rows"):
        check_extract(con, extract, with_target=True)


def test_truncated_last_line(con, extract):
    data = extract.read_bytes()
    extract.write_bytes(data[: len(data) - 200])  # a copy cut off mid-row
    with pytest.raises(ExtractError, match="truncated, half-written or malformed"):
        check_extract(con, extract, with_target=True)


def test_non_utf8_bytes(con, extract):
    lines = _lines(extract)
    data = ("\n".join(lines[:300]) + "\n").encode() + lines[300].replace("DNI", "D\xd1I").encode("latin-1") + b"\n"
    extract.write_bytes(data)
    with pytest.raises(ExtractError, match="not valid UTF-8"):
        check_extract(con, extract, with_target=True)


def test_non_utf8_header(con, extract):
    extract.write_bytes(b"partici\xf3n," + extract.read_bytes())
    with pytest.raises(ExtractError, match=r"header is not UTF-8 \(invalid continuation byte at byte 7\)"):
        check_extract(con, extract, with_target=True)


def test_duplicate_keys_keep_the_first_row(con, extract):
    lines = _lines(extract)
    duplicate = lines[10].replace(",DNI,", ",CE,").replace(",CE,", ",RUC,") if ",DNI," in lines[10] else lines[10]
    _rewrite(extract, lines + [duplicate, lines[20]])
    check = check_extract(con, extract, with_target=True)
    assert check.duplicate_keys == 2
    table = con.execute(typed_select([check], dedupe=True)).fetch_df()
    assert len(table) == 500 and table["key_value"].is_unique
    first = lines[10].split(",")
    kept = table[table["key_value"] == first[1]].iloc[0]
    assert kept["tip_doc"] == first[3]


# The loaders take clean files in one typed pass and hand anything else to check_extract; whichever
# path a file takes, the verdict and the rows must be exactly what the thorough path gives.

def _garbage(path):
    return _set_column(path, "tea", "n/a", every=250)


def _duplicates(path):
    lines = _lines(path)
    return _rewrite(path, lines + [lines[10], lines[20]])


def _bad_labels(path):
    return _set_column(path, "target", "2", every=100)


def _header_only(path):
    return _rewrite(path, _lines(path)[:1])


def _truncated(path):
    path.write_bytes(path.read_bytes()[:-200])
    return path


def _integer_as_decimal(path):
    return _set_column(path, "p_fecinformacion", "202303.0", every=7)


def _reordered_with_extra_column(path):
    rows = [list(reversed(line.split(","))) + ["x"] for line in _lines(path)]
    rows[0][-1] = "comentario"
    return _rewrite(path, [",".join(cells) for cells in rows])


VARIANTS = [None, _garbage, _duplicates, _bad_labels, _header_only, _truncated, _integer_as_decimal, _reordered_with_extra_column]


def _thorough(con, path):
    check = check_extract(con, path, with_target=True)
    return check, con.sql(typed_select([check], dedupe=check.duplicate_keys > 0)).to_arrow_table()


def _outcome(load):
    try:
        return load()
    except ExtractError as exc:
        return f"ExtractError: {exc}"


@pytest.mark.parametrize("spoil", VARIANTS, ids=lambda f: f.__name__.strip("_") if f else "clean")
def test_load_extract_gives_what_the_thorough_path_gives(con, extract, spoil):
    if spoil:
        spoil(extract)
    expected = _outcome(lambda: _thorough(con, extract))
    got = _outcome(lambda: load_extract(con, extract, with_target=True))
    if isinstance(expected, str):
        assert got == expected
        return
    (expected_check, expected_rows), (got_check, got_rows) = expected, got
    assert got_check == expected_check
    by_key = [("key_value", "ascending")]  # row order is not part of the result (dedupe reorders)
    assert got_rows.sort_by(by_key).equals(expected_rows.sort_by(by_key)), "rows differ from check_extract + typed_select"


@pytest.mark.parametrize("spoil", VARIANTS, ids=lambda f: f.__name__.strip("_") if f else "clean")
def test_load_extracts_replaces_the_table_whole_or_not_at_all(con, tmp_path, spoil):
    clean = write_extract(generate_month(2, 300, seed=3), tmp_path)
    other = write_extract(generate_month(3, 500, seed=2), tmp_path)
    if spoil:
        spoil(other)
    con.execute("CREATE TABLE raw_training AS SELECT 'earlier' AS kept")
    expected = _outcome(lambda: [_thorough(con, clean)[0], _thorough(con, other)[0]])
    got = _outcome(lambda: load_extracts(con, "raw_training", [clean, other], with_target=True))
    assert got == expected
    if isinstance(expected, str):
        assert con.sql("SELECT * FROM raw_training").fetchall() == [("earlier",)]
        return
    order = "ORDER BY source_file, key_value"
    rows = con.sql(f"SELECT * FROM raw_training {order}").to_arrow_table()
    thorough = con.sql(f"SELECT * FROM ({typed_select(expected, dedupe=any(c.duplicate_keys for c in expected))}) {order}")
    assert rows.equals(thorough.to_arrow_table())


@pytest.mark.parametrize("spoil", [None, _reordered_with_extra_column], ids=["clean", "reordered_with_extra_column"])
def test_clean_files_take_one_typed_pass(con, extract, spoil, monkeypatch):
    """The speed of scoring and training rests on this: the text pass only runs for dirty files."""
    if spoil:
        spoil(extract)

    def text_pass(*args, **kwargs):
        raise AssertionError("a clean file went through check_extract's text pass")

    monkeypatch.setattr("mlops_assets.extracts.loading.check_extract", text_pass)
    check, rows = load_extract(con, extract, with_target=True)
    assert check.rows == rows.num_rows == 500
    assert [c.rows for c in load_extracts(con, "raw_training", [extract], with_target=True)] == [500]


@pytest.mark.parametrize("spoil", VARIANTS, ids=lambda f: f.__name__.strip("_") if f else "clean")
def test_files_loaded_before_keep_their_rows_and_the_table_is_what_a_full_load_gives(con, tmp_path, spoil, monkeypatch):
    """A retraining window shares all but one file with the last load: those keep their rows instead
    of being parsed again, and the table ends exactly as loading every file afresh leaves it."""
    leaving, staying, arriving = (write_extract(generate_month(m, 200 + 100 * m, seed=m), tmp_path) for m in (1, 2, 3))
    loaded = {c.path.name: c.sha256 for c in load_extracts(con, "raw_training", [leaving, staying], with_target=True)}
    order = "ORDER BY source_file, key_value"
    before = con.sql(f"SELECT * FROM raw_training {order}").to_arrow_table()
    if spoil:
        spoil(arriving)
    with duckdb.connect() as afresh:
        expected = _outcome(lambda: load_extracts(afresh, "raw_training", [staying, arriving], with_target=True))
        expected_rows = None if isinstance(expected, str) else afresh.sql(f"SELECT * FROM raw_training {order}").to_arrow_table()
    parsed = []
    parse = loading.native_select
    monkeypatch.setattr(loading, "native_select", lambda path, header: parsed.append(path.name) or parse(path, header))

    got = _outcome(lambda: load_extracts(con, "raw_training", [staying, arriving], with_target=True, loaded=loaded))
    assert got == expected
    if expected_rows is None:  # rejected: the table is the last load's
        assert con.sql(f"SELECT * FROM raw_training {order}").to_arrow_table().equals(before)
        return
    assert con.sql(f"SELECT * FROM raw_training {order}").to_arrow_table().equals(expected_rows)
    if spoil is None:
        assert parsed == [arriving.name]


def test_a_file_changed_since_it_was_loaded_is_read_again(con, tmp_path):
    path = write_extract(generate_month(2, 300, seed=2), tmp_path)
    [first] = load_extracts(con, "raw_training", [path], with_target=True)
    write_extract(generate_month(2, 400, seed=5), tmp_path)  # the same name, other bytes
    [again] = load_extracts(con, "raw_training", [path], with_target=True, loaded={path.name: first.sha256})
    assert again.sha256 != first.sha256
    assert again.rows == con.execute("SELECT count(*) FROM raw_training").fetchall()[0][0] == 400
