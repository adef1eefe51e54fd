"""Realistic synthetic monthly extracts with the real schema (`shared/data-contract.md`).

The real extracts are private. This generator writes files with the same 69 columns, column
families, missingness and a few-percent positive rate, and it knows the ground truth that
tests need: each row's true probability of `target = 1` (so a model's AUC can be compared with
the oracle's) and which columns a drift scenario shifted.

CLI: `python -m mlops_assets.sample_data --rows 50000 --months 5 --out data/raw`
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv

from mlops_assets import contract

DRIFT_SCENARIOS = ("none", "mild", "numeric_shift", "categorical_mix", "concept_change")

BANKS = ("INTERBANK", "BCP", "BBVA", "SCOTIABANK", "OTRO", "BANBIF", "PICHINCHA", "CITIBANK")
BANK_SHARES = (0.16, 0.28, 0.20, 0.14, 0.18, 0.025, 0.013, 0.002)
"""CITIBANK is rare on purpose: small training samples may never see it (an unseen category)."""
NEW_BANK = "FALABELLA"
"""Appears only under the categorical_mix scenario: a category training has never seen."""

# Column families by prefix; first match wins. Drives each column's distribution.
_FAMILY_PREFIXES = (
    ("flg_", "flag"),
    ("beta_", "slope"),
    ("tea", "rate"),
    ("pct_", "ratio"), ("prop_", "ratio"), ("rat_", "ratio"), ("prom_pct_", "ratio"),
    ("prom_sow_", "ratio"), ("prom_uso_", "ratio"), ("max_uso", "ratio"), ("prom_score_", "ratio"),
    ("ctd_", "count"), ("nro_", "count"), ("num_", "count"), ("nprod_", "count"), ("cnl_", "count"),
    ("openhtml_", "count"), ("senthtml_", "count"), ("apppag_", "count"), ("bpitrx_", "count"),
    ("telefonos_", "count"), ("dif_", "count"), ("ant_", "count"), ("max_nact", "count"),
    ("max_camp", "count"), ("seg_", "segment"), ("avg_openhtml", "count"),
)
"""Anything else (`prom_`, `avg_`, `prm_`, `mnt_`, `sld`, `lin_`, `cre_`, `ingreso_`, `pas_`, ...) is a skewed amount."""

# The true model: logit = INTERCEPT + sum(weight * standardized feature); a missing value adds 0.
# Transforms are fixed constants (not fitted), so the concept is identical in every month.
TRUE_WEIGHTS = {
    "ctd_app_productos_m1": 0.45,
    "prom_uso_tc_rccsf3m": 0.40,
    "ingreso_neto": 0.35,
    "flg_saltotppe12m": 0.30,
    "nro_producto_6m": 0.30,
    "ctd_campecsm01": -0.30,
    "prom_score_acepta_12meses": 0.70,
    "tea": -0.35,
    "beta_saltotppe12m": 0.25,
    "avg_openhtml_6m": 0.30,
    "dif_contacto_efectivo_10meses": -0.30,
    "pct_usotcrm01": 0.30,
}
BANK_EFFECTS = {"INTERBANK": 0.6, "OTRO": -0.4}
INTERCEPT = -3.9
"""Gives a positive rate of about 4 %."""

# concept_change: the same features, but the relation to the target is rewired.
CONCEPT_CHANGE_WEIGHTS = {
    name: (-w if i % 2 == 0 else w * 0.3) for i, (name, w) in enumerate(TRUE_WEIGHTS.items())
}

NUMERIC_SHIFTED = contract.NUMERIC_FEATURES[::3]
"""numeric_shift moves every third numeric feature (20 of 58, about 34 %)."""
MILD_SHIFTED = contract.NUMERIC_FEATURES[1:20:4]
"""mild moves 5 features slightly: real but well under the per-column drift threshold."""


def column_family(column: str) -> str:
    for prefix, family in _FAMILY_PREFIXES:
        if column.startswith(prefix):
            return family
    return "amount"


@dataclasses.dataclass(frozen=True)
class SampleMonth:
    """One generated extract and the ground truth behind it."""

    month: int
    table: pa.Table
    true_probability: np.ndarray
    drifted_columns: tuple[str, ...]

    @property
    def file_name(self) -> str:
        return f"p{self.month}_extrac.csv"


def _column_params(column: str) -> tuple[float, float, float]:
    """Stable per-column (location, spread, missing share), derived from the column's name."""
    h = int.from_bytes(column.encode(), "little") % 1_000_003
    u1, u2, u3 = (h % 97) / 97, (h % 89) / 89, (h % 83) / 83
    heavy_missing = h % 11 == 0  # a few columns are far more often missing
    missing = 0.35 + 0.3 * u3 if heavy_missing else 0.20 * u3
    return u1, u2, missing


def _numeric(rng: np.random.Generator, column: str, n: int, shift: float) -> np.ndarray:
    """Draw one numeric feature; `shift` is the drift in units of that family's natural scale."""
    u1, u2, _ = _column_params(column)
    family = column_family(column)
    if family == "flag":
        return (rng.random(n) < np.clip(0.1 + 0.5 * u1 + 0.25 * shift, 0, 1)).astype(np.float64)
    if family == "slope":
        return np.round(rng.normal(0.5 * shift * (0.2 + u2), 0.2 + u2, n), 4)
    if family == "rate":
        return np.round(np.clip(rng.normal(0.35 + 0.1 * shift, 0.12, n), 0.01, 1.2), 4)
    if family == "ratio":
        a, b = 1.0 + 3 * u1, 2.0 + 4 * u2
        return np.round(np.clip(rng.beta(a * (1 + shift), b, n), 0, 1), 3)
    if family == "segment":
        return rng.integers(1, 7, n).astype(np.float64) + np.where(rng.random(n) < 0.5 * shift, 1, 0)
    if family == "count":
        mean = (0.5 + 12 * u1) * (1 + shift)
        return rng.poisson(mean, n).astype(np.float64)
    # skewed amounts with a share of exact zeros
    values = rng.lognormal(5 + 4 * u1 + shift, 1.0 + 0.6 * u2, n)
    zeros = rng.random(n) < 0.1 + 0.3 * u2
    return np.round(np.where(zeros, 0.0, values), 2)


def _standardized(column: str, values: np.ndarray) -> np.ndarray:
    """Fixed transform of a true-model feature to roughly unit scale; missing becomes 0."""
    family = column_family(column)
    if family == "amount":
        z = (np.log1p(values) - 8.0) / 3.0
    elif family == "count":
        z = (np.log1p(values) - 1.5) / 0.8
    elif family == "ratio":
        z = (values - 0.35) / 0.2
    elif family == "rate":
        z = (values - 0.35) / 0.12
    elif family == "slope":
        z = values / 0.6
    else:
        z = (values - 0.4) / 0.5
    return np.nan_to_num(z, nan=0.0)


def true_probability(
    features: dict[str, np.ndarray], bank: np.ndarray, weights: dict[str, float] = TRUE_WEIGHTS
) -> np.ndarray:
    """The generator's own P(target = 1 | observed features): the oracle a model is judged against."""
    logit = np.full(len(bank), INTERCEPT)
    for column, weight in weights.items():
        logit += weight * _standardized(column, features[column])
    pct = np.nan_to_num(features["pct_usotcrm01"], nan=0.35)
    logit += -1.2 * (pct - 0.5) ** 2  # a non-linear bump the model has to learn
    for name, effect in BANK_EFFECTS.items():
        logit += np.where(bank == name, effect, 0.0)
    return 1.0 / (1.0 + np.exp(-logit))


def _masked(rng: np.random.Generator, values: np.ndarray, share: float) -> np.ndarray:
    out = values.astype(np.float64, copy=True)
    out[rng.random(len(out)) < share] = np.nan
    return out


def generate_month(
    month: int,
    rows: int,
    seed: int = 7,
    drift: str = "none",
    with_target: bool = True,
) -> SampleMonth:
    """Generate extract `p<month>`; `drift` shapes this month relative to the stationary months."""
    if drift not in DRIFT_SCENARIOS:
        raise ValueError(f"unknown drift scenario {drift!r}; choose one of {DRIFT_SCENARIOS}")
    rng = np.random.default_rng([seed, month])
    shifts = dict.fromkeys(contract.NUMERIC_FEATURES, 0.0)
    if drift == "numeric_shift":
        shifts.update(dict.fromkeys(NUMERIC_SHIFTED, 0.8))
    elif drift == "mild":
        shifts.update(dict.fromkeys(MILD_SHIFTED, 0.02))

    features: dict[str, np.ndarray] = {}
    for column in contract.NUMERIC_FEATURES:
        _, _, missing = _column_params(column)
        features[column] = _masked(rng, _numeric(rng, column, rows, shifts[column]), missing)

    banks, shares = list(BANKS), np.array(BANK_SHARES)
    if drift == "categorical_mix":
        banks.append(NEW_BANK)
        shares = np.array([0.45, 0.10, 0.08, 0.05, 0.10, 0.02, 0.01, 0.0, 0.19])
    bank = np.asarray(banks, dtype=object)[rng.choice(len(banks), rows, p=shares / shares.sum())]
    bank[rng.random(rows) < 0.45] = None  # first-line bank is often unknown

    weights = CONCEPT_CHANGE_WEIGHTS if drift == "concept_change" else TRUE_WEIGHTS
    probability = true_probability(features, bank, weights)
    target = (rng.random(rows) < probability).astype(np.int64)

    customers = rng.choice(int(rows * 1.25) + 10, rows, replace=False)
    monto = np.round(np.where(rng.random(rows) < 0.04, 0.0, rng.lognormal(8.5, 1.1, rows)), 2)
    columns: dict[str, pa.Array] = {
        "partition": pa.array(np.full(rows, f"p{month}")),
        "key_value": pa.array(month * 10_000_000 + np.arange(1, rows + 1)),
        "codunicocli": pa.array(np.char.add("CU", np.char.zfill(customers.astype(str), 8))),
        "tip_doc": pa.array(np.asarray(["DNI", "CE", "RUC"])[rng.choice(3, rows, p=[0.93, 0.04, 0.03])]),
        "fch_creacion": pa.array(
            (np.datetime64("2005-01-01") + rng.integers(0, 7000, rows)).astype(str)
        ),
        "p_fecinformacion": pa.array(np.full(rows, _month_end(month))),
        contract.TARGET: pa.array(target),
        "monto": _nullable(_masked(rng, monto, 0.02)),
        "prob_value_contact": _nullable(_masked(rng, np.round(rng.beta(2, 5, rows), 4), 0.10)),
        "grp_campecs06m": pa.array(
            np.where(rng.random(rows) < 0.08, None, np.char.add("G", rng.integers(1, 6, rows).astype(str)))
        ),
        "ent_1erlntcrallsfm01": pa.array(bank, type=pa.string()),
    }
    for column in contract.NUMERIC_FEATURES:
        columns[column] = _nullable(features[column], integral=column_family(column) in ("count", "flag", "segment"))
    order = [c for c in contract.ALL_COLUMNS if with_target or c != contract.TARGET]

    drifted: tuple[str, ...] = ()
    if drift == "numeric_shift":
        drifted = NUMERIC_SHIFTED
    elif drift == "categorical_mix":
        drifted = contract.CATEGORICAL_FEATURES
    return SampleMonth(month, pa.table({c: columns[c] for c in order}), probability, drifted)


def _month_end(month: int) -> int:
    """p1 is January 2024, p13 January 2025, ... as a YYYYMMDD integer."""
    year, month0 = 2024 + (month - 1) // 12, (month - 1) % 12
    last_day = (np.datetime64(f"{year}-{month0 + 1:02d}") + 1).astype("datetime64[D]") - 1
    return int(str(last_day).replace("-", ""))


def _nullable(values: np.ndarray, integral: bool = False) -> pa.Array:
    mask = np.isnan(values)
    if integral:
        return pa.array(np.nan_to_num(values).astype(np.int64), mask=mask)
    return pa.array(values, mask=mask)


def write_extract(month: SampleMonth, folder: Path) -> Path:
    """Write atomically (temp name, then rename) so a watcher never sees a half-written extract."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / month.file_name
    tmp = folder / f".{month.file_name}.tmp"
    pa_csv.write_csv(month.table, tmp, pa_csv.WriteOptions(quoting_style="none"))
    os.replace(tmp, path)
    return path


def generate_extracts(
    out: Path,
    rows: int,
    months: int = 5,
    seed: int = 7,
    drift: str = "none",
    inference_labels: bool = False,
) -> list[Path]:
    """p1..p(months-1) into `out/training`, the newest month (with `drift`) into `out/inference`."""
    if months < 2:
        raise ValueError("need at least one training month and one inference month")
    paths = [write_extract(generate_month(m, rows, seed), out / "training") for m in range(1, months)]
    newest = generate_month(months, rows, seed, drift, with_target=inference_labels)
    paths.append(write_extract(newest, out / "inference"))
    return paths


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000, help="rows per monthly extract")
    parser.add_argument("--months", type=int, default=5, help="months; the newest goes to inference/")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--drift", choices=DRIFT_SCENARIOS, default="none", help="scenario for the newest month")
    parser.add_argument("--inference-labels", action="store_true", help="keep `target` in the inference extract")
    parser.add_argument("--out", type=Path, default=Path("data/raw"))
    args = parser.parse_args(argv)
    for path in generate_extracts(args.out, args.rows, args.months, args.seed, args.drift, args.inference_labels):
        print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
