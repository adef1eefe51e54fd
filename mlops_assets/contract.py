"""The data contract of the monthly extracts: the one place that names columns and their roles.

Mirrors `shared/data-contract.md`. Everything else (readers, features, scoring, drift,
the sample generator) derives its column lists from here.
"""

TRACE_COLUMNS = (
    "partition",
    "key_value",
    "codunicocli",
    "tip_doc",
    "fch_creacion",
    "p_fecinformacion",
)
"""Identification and trace: never features, always carried so a score traces to its row and file."""

TARGET = "target"

BUSINESS_COLUMNS = ("monto", "prob_value_contact", "grp_campecs06m")
"""Used by business value only, never model features."""

CATEGORICAL_FEATURES = ("ent_1erlntcrallsfm01",)

NUMERIC_FEATURES = (
    "nro_producto_6m", "prom_uso_tc_rccsf3m", "ctd_sms_received", "max_usotcribksf06m",
    "ctd_camptot06m", "dsv_svppallsf06m", "prm_svprmecs06m", "ctd_app_productos_m1",
    "ctd_campecsm01", "lin_tcrrstsf03m", "mnt_ptm", "dif_no_gestionado_4meses",
    "max_campecs06m", "beta_pctusotcr12m", "rat_disefepnm01", "flg_saltotppe12m",
    "prom_sow_lintcribksf3m", "openhtml_1m", "nprod_1m", "nro_transfer_6m",
    "max_usotcrrstsf03m", "prm_cnt_fee_amt_u7d", "pas_avg6m_max12m", "beta_saltotppe12m",
    "seg_un", "ant_ultprdallsf", "avg_sald_pas_3m", "pas_1m_avg3m",
    "num_incrsaldispefe06m", "cnl_age_p4m_p12m", "cnl_atm_p4m_p12m", "cre_lin_tc_rccibk_m07",
    "prm_svprmlibdis06m", "ingreso_neto", "max_nact_12m", "cre_sldtotfinprm03",
    "dif_contacto_efectivo_10meses", "act_1m_avg3m", "monto_consumos_ecommerce_tc", "ctd_camptotm01",
    "prop_atm_4m", "prom_pct_saldopprcc6m", "apppag_1m", "nro_configuracion_6m",
    "act_avg6m_max12m", "sldvig_tcrsrcf", "prom_score_acepta_12meses", "telefonos_6meses",
    "pas_1m_avg6m", "ctd_camptototrcnl06m", "prm_saltotrdpj03m", "bpitrx_1m",
    "prm_lintcribksf03m", "ctd_entrdm01", "avg_openhtml_6m", "tea",
    "pct_usotcrm01", "senthtml_1m",
)

MODEL_FEATURES = NUMERIC_FEATURES + CATEGORICAL_FEATURES
"""The 59 original model features; drift is judged on these, never on encoded columns."""

ALL_COLUMNS = TRACE_COLUMNS + (TARGET,) + BUSINESS_COLUMNS + MODEL_FEATURES

# DuckDB types each column is cast to after reading. Identifiers stay text so real files with
# leading zeros or alphanumeric codes keep their exact value.
COLUMN_TYPES: dict[str, str] = {
    **{c: "VARCHAR" for c in TRACE_COLUMNS},
    "p_fecinformacion": "BIGINT",
    TARGET: "INTEGER",
    "monto": "DOUBLE",
    "prob_value_contact": "DOUBLE",
    "grp_campecs06m": "VARCHAR",
    **{c: "VARCHAR" for c in CATEGORICAL_FEATURES},
    **{c: "DOUBLE" for c in NUMERIC_FEATURES},
}

NUMERIC_COLUMNS = tuple(c for c in ALL_COLUMNS if COLUMN_TYPES[c] != "VARCHAR")
"""Columns whose text must parse as a number; garbage there is nulled and counted."""

assert len(ALL_COLUMNS) == 69 and len(set(ALL_COLUMNS)) == 69, "contract must list 69 distinct columns"
assert len(NUMERIC_FEATURES) == 58


def required_columns(*, with_target: bool) -> tuple[str, ...]:
    """Columns an extract must have: training needs the label, inference does not."""
    return ALL_COLUMNS if with_target else tuple(c for c in ALL_COLUMNS if c != TARGET)


def extract_sort_key(file_name: str) -> tuple[int, str]:
    """Order extracts by month number: `p10_extrac.csv` comes after `p9_extrac.csv`."""
    stem = file_name.split("_", 1)[0]
    digits = stem[1:] if stem[:1].lower() == "p" else ""
    return (int(digits), file_name) if digits.isdigit() else (-1, file_name)
