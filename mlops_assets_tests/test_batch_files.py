"""One rule for what a batch file is, and the training window built on it (plain functions)."""

import pytest
from hypothesis import given, strategies as st

from mlops_assets import training_window
from mlops_assets.batch_files import KEY, BatchNameError, batch_key, batch_path
from mlops_assets.app.upload import safe_file_name
from mlops_assets.sample_data import generate_month, write_extract


@pytest.mark.parametrize(
    ("name", "key"),
    [("p5_extrac.csv", "p5_extrac"), ("p11_extrac.CSV", "p11_extrac"), ("junio.csv", "junio"), ("Mes-07_2025.Csv", "Mes-07_2025")],
)
def test_a_batch_key_is_the_name_without_csv_in_any_case(name, key):
    assert batch_key(name) == key


@pytest.mark.parametrize("name", ["p5 extrac.csv", "_p5.csv", "p5.csv.tmp", "p5.txt", "junio!.csv", "ñandú.csv", ".csv", "a" * 101 + ".csv"])
def test_a_name_that_cannot_be_a_batch_is_refused_with_the_reason(name):
    with pytest.raises(BatchNameError, match="cannot name a batch|is not a .csv file"):
        batch_key(name)


def test_the_file_of_a_batch_is_found_whatever_its_extension_case(tmp_path):
    (tmp_path / "p11_extrac.CSV").write_text("x")
    assert batch_path(tmp_path, "p11_extrac") == tmp_path / "p11_extrac.CSV"
    assert batch_path(tmp_path, "p12_extrac") == tmp_path / "p12_extrac.csv"  # where it was expected


@given(st.text(min_size=1, max_size=60))
def test_every_upload_name_the_app_accepts_is_a_batch_name(name):
    try:
        stored = safe_file_name(f"{name}.csv")
    except ValueError:
        return
    assert KEY.fullmatch(batch_key(stored))


def _month(folder, month, name=None):
    path = write_extract(generate_month(month, 50, seed=1), folder)
    return path.rename(folder / name) if name else path


def test_the_window_is_ordered_by_the_month_the_files_hold_whatever_their_names(tmp_path):
    training = tmp_path / "training"
    for month in (2, 3, 10):
        _month(training, month)
    _month(training, 6, "junio.csv")
    (training / "notes.txt").write_text("x")
    (training / ".p12_extrac.csv.tmp").write_text("x")
    assert [p.name for p in training_window.window_files(training)] == ["p2_extrac.csv", "p3_extrac.csv", "junio.csv", "p10_extrac.csv"]
    assert training_window.window_files(tmp_path / "missing") == []


def test_a_proposed_window_changes_the_folders_only_when_committed(tmp_path):
    training, archive, staging = tmp_path / "training", tmp_path / "archive", tmp_path / "staging"
    for month in (1, 2, 3, 4):
        _month(training, month)
    admitted = _month(staging, 5, "julio.csv")
    window = training_window.propose(training, 4, admitted)
    assert [p.name for p in window.files] == ["p2_extrac.csv", "p3_extrac.csv", "p4_extrac.csv", "julio.csv"]
    assert window.leaving == ("p1_extrac.csv",)
    assert sorted(p.name for p in training.iterdir()) == [f"p{m}_extrac.csv" for m in (1, 2, 3, 4)]  # nothing moved yet
    assert training_window.commit(training, archive, admitted, list(window.leaving)) == ["p1_extrac.csv"]
    assert [p.name for p in training_window.window_files(training)] == ["p2_extrac.csv", "p3_extrac.csv", "p4_extrac.csv", "julio.csv"]
    assert [p.name for p in archive.iterdir()] == ["p1_extrac.csv"]
    # repeating a commit that already happened (a retried step) changes nothing
    assert training_window.commit(training, archive, admitted, list(window.leaving)) == []
    assert len(list(training.iterdir())) == 4 and len(list(archive.iterdir())) == 1


def test_a_batch_admitted_again_under_its_name_replaces_the_old_copy_which_is_archived(tmp_path):
    training, archive, staging = tmp_path / "training", tmp_path / "archive", tmp_path / "staging"
    for month in (1, 2):
        _month(training, month)
    old = (training / "p2_extrac.csv").read_bytes()
    again = _month(staging, 2)
    window = training_window.propose(training, 4, again)
    assert [p.name for p in window.files] == ["p1_extrac.csv", "p2_extrac.csv"] and window.files[1] == again
    assert training_window.commit(training, archive, again, list(window.leaving)) == ["p2_extrac.csv"]
    assert (archive / "p2_extrac.csv").read_bytes() == old
