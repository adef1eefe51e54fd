"""The campaign app: `make app`, or `python -m mlops_assets.app`, on 127.0.0.1:8501.

It reads the warehouse through one short read-only connection per page load and writes only
validated uploads into the inference folder; the Dagster sensors do the rest.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from mlops_assets.app import charts, reader
from mlops_assets.app.upload import UploadRefused, accept_upload
from mlops_assets.scoring import EXECUTION_GROUPS, priority
from mlops_assets.settings import PipelineSettings

CALL_CENTER_GROUPS = [1, 2, 3]  # preselected for the call-center download: the high-priority tier


def show_batch(con, batch: pd.Series) -> None:
    name = batch["batch"]
    st.subheader(f"Batch {name}")
    rows, version, drift_score, estimate, auc = st.columns(5)
    rows.metric("Rows scored", f"{batch['rows_scored']:,}")
    version.metric("Model version", f"v{batch['model_version']}")
    if pd.notna(batch["drift_score"]):
        detected = bool(batch["drift_detected"])
        drift_score.metric(
            "drift_score", f"{batch['drift_score']:.3f}", "drift detected" if detected else "no drift",
            delta_color="inverse" if detected else "off",
        )
        st.caption(f"Retraining: {batch['retraining']}")
        if pd.notna(batch["retraining_outcome"]):
            st.caption(f"Retraining outcome: {batch['retraining_outcome']}")
    else:
        drift_score.metric("drift_score", "not judged yet")
    estimate.metric("Estimated AUC", f"{batch['estimated_auc']:.3f}" if pd.notna(batch["estimated_auc"]) else "not judged yet")
    auc.metric("Realized AUC", f"{batch['realized_auc']:.3f}" if pd.notna(batch["realized_auc"]) else "no labels")

    st.markdown("#### Business value per execution group")
    groups = reader.value_by_group(con, name)
    table, chart = st.columns([3, 2])
    table.dataframe(groups, hide_index=True)
    chart.bar_chart(groups, x="execution_group", y="total_value")

    means = reader.mean_value_per_batch(con)
    current = means.loc[means["batch"] == name].iloc[0]
    mine = current["mean_value"]
    earlier = means.loc[means["valued_at"] < current["valued_at"], "mean_value"]
    left, right = st.columns(2)
    left.altair_chart(charts.gauge(mine, 1.25 * means["mean_value"].max(), "mean value per customer", list(earlier)))
    if len(earlier):
        right.metric("Mean value per customer", f"{mine:.4f}", f"{mine - earlier.mean():+.4f} vs earlier batches' mean")
    else:
        right.metric("Mean value per customer", f"{mine:.4f}", "first batch", delta_color="off")

    top_n = st.number_input("Top customers to show", min_value=5, max_value=500, value=20, step=5)
    st.dataframe(reader.customers(con, name, limit=int(top_n)), hide_index=True)

    chosen = st.multiselect(
        "Execution groups for the call center", list(range(1, EXECUTION_GROUPS + 1)), default=CALL_CENTER_GROUPS
    )
    selection = reader.customers(con, name, groups=chosen)
    st.download_button(
        f"Download {len(selection):,} customers (CSV)",
        selection.to_csv(index=False).encode(),
        file_name=f"{name}_groups_{'-'.join(map(str, sorted(chosen))) or 'none'}.csv",
        mime="text/csv",
        key="download_groups",
    )


def show_customer(con) -> None:
    identifier = st.text_input("key_value or codunicocli", key="customer")
    if not identifier.strip():
        return
    history = reader.customer_history(con, identifier)
    if history.empty:
        st.info(f"No scored customer has key_value or codunicocli {identifier.strip()!r}.")
        return
    latest = history.iloc[0]
    st.markdown(f"#### Customer {latest['key_value']} (codunicocli {latest['codunicocli']}), batch {latest['batch']}")
    gauge, facts = st.columns(2)
    gauge.altair_chart(charts.gauge(latest["probability"], 1.0, "purchase probability"))
    facts.metric("Business value", f"{latest['business_value']:.4f}")
    facts.metric("Execution group", int(latest["execution_group"]))
    rank, verdict = priority(int(latest["execution_group"]))
    (facts.success, facts.warning, facts.info)[rank](verdict)
    st.markdown("History across batches")
    st.dataframe(history, hide_index=True)


def show_drift(con, settings: PipelineSettings, batch: str | None) -> None:
    history = reader.drift_history(con)
    if history.empty:
        st.info("No batch has been judged for drift yet (asset drift_report).")
        return
    st.altair_chart(charts.drift_history_chart(history, settings.drift_threshold), width="stretch")
    st.markdown("#### Model performance per batch")
    st.caption(
        "Estimated AUC comes from the scoring model's probabilities alone (it assumes they are calibrated, which "
        "training checks); it sees the features move but not a changed relation to the outcome, which only the "
        "realized AUC shows once labels arrive."
    )
    performance = ["batch", "scored_by", "estimated_auc", "realized_auc", "estimated_top_decile_positives",
                   "realized_top_decile_positives", "reference"]
    st.dataframe(history[performance], hide_index=True)
    if batch is None:
        return
    st.markdown(f"#### Most drifted features of {batch}")
    st.dataframe(reader.top_drifted_columns(con, batch), hide_index=True)
    report = settings.batch_report_dir(batch) / "drift_report.html"
    if report.exists():
        st.caption(f"evidently report: {report}")
        st.iframe(report, height=900)
    else:
        st.info(f"No evidently HTML report for {batch} yet (asset drift_report_html); expected at {report}.")


def show_upload(settings: PipelineSettings) -> None:
    st.markdown(
        f"A file is checked against the data contract before it is written; a valid file goes to "
        f"`{settings.inference_dir}` and the inference sensor scores it."
    )
    uploaded = st.file_uploader("Extract (CSV)", type=["csv"], key="upload_file")
    replace = st.checkbox("Replace an extract of the same name (it will be scored again)", key="upload_replace")
    if st.button("Validate and add to the inference folder", key="upload_button", disabled=uploaded is None):
        try:
            target, check = accept_upload(
                uploaded.getvalue(), uploaded.name, settings.inference_dir,
                overwrite=replace, max_invalid_share=settings.max_invalid_share,
            )
        except UploadRefused as exc:
            st.error(str(exc))
        else:
            st.success(f"{target.name}: {check.rows:,} rows passed the contract check; written to {target}. "
                       f"The inference sensor will score it as batch {target.stem}.")


def main() -> None:
    settings = PipelineSettings.from_env()
    st.set_page_config(page_title="Cross-sell campaign", layout="wide")
    st.title("Cross-sell campaign")
    value_tab, customer_tab, drift_tab, upload_tab = st.tabs(["Batches and value", "Customer lookup", "Drift", "Upload"])
    with upload_tab:
        show_upload(settings)
    try:
        with reader.open_warehouse(settings.warehouse_file) as con:
            batches = reader.scored_batches(con)
            chosen = st.sidebar.selectbox("Batch (newest first)", list(batches["batch"]), key="batch")
            with value_tab:
                if chosen is None:
                    st.info("No batch has been scored yet: drop an extract into the inference folder.")
                else:
                    show_batch(con, batches.loc[batches["batch"] == chosen].iloc[0])
            with customer_tab:
                show_customer(con)
            with drift_tab:
                show_drift(con, settings, chosen)
    except reader.WarehouseUnavailable as exc:
        st.warning(str(exc))
    st.sidebar.caption(f"Warehouse: {settings.warehouse_file}")


main()
