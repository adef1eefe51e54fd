"""Altair charts for the app (Streamlit renders them; no extra plotting dependency)."""

from __future__ import annotations

import math

import altair as alt
import pandas as pd

HALF_CIRCLE = alt.Scale(domain=[0, 1], range=[-math.pi / 2, math.pi / 2])


def gauge(value: float, maximum: float, label: str, earlier: list[float] = ()) -> alt.LayerChart:
    """A half-circle gauge of `value` on 0..`maximum`, with a tick for each earlier value."""
    maximum = maximum if maximum > 0 else 1.0
    share = min(max(value / maximum, 0.0), 1.0)
    arcs = pd.DataFrame({"start": [0.0, 0.0], "end": [1.0, share], "part": ["scale", "value"]})
    ring = (
        alt.Chart(arcs)
        .mark_arc(innerRadius=70, outerRadius=110)
        .encode(
            theta=alt.Theta("start:Q", scale=HALF_CIRCLE),
            theta2="end:Q",
            color=alt.Color("part:N", scale=alt.Scale(domain=["scale", "value"], range=["#e6e6e6", "#1f77b4"]), legend=None),
            order=alt.Order("part:N"),
        )
    )
    ticks = pd.DataFrame({"start": [min(v / maximum, 1.0) for v in earlier]})
    ticks["end"] = ticks["start"] + 0.004
    marks = alt.Chart(ticks).mark_arc(innerRadius=64, outerRadius=116, color="#444").encode(
        theta=alt.Theta("start:Q", scale=HALF_CIRCLE), theta2="end:Q"
    )
    text = alt.Chart(pd.DataFrame({"text": [f"{value:,.3f}"], "label": [label]})).mark_text(
        fontSize=24, fontWeight="bold", dy=-10
    ).encode(text="text:N")
    caption = alt.Chart(pd.DataFrame({"label": [label]})).mark_text(fontSize=12, dy=14).encode(text="label:N")
    return alt.layer(ring, marks, text, caption).properties(height=150, width=260)


def drift_history_chart(history: pd.DataFrame, threshold: float) -> alt.LayerChart:
    """drift_score per batch in the order judged, with the retraining threshold as a dashed line."""
    order = list(history["batch"])
    line = (
        alt.Chart(history)
        .mark_line(point=True)
        .encode(
            x=alt.X("batch:N", sort=order, title="batch"),
            y=alt.Y("drift_score:Q", title="drift_score (share of drifted features)"),
            tooltip=["batch", alt.Tooltip("drift_score:Q", format=".3f"), "drift_detected"],
        )
    )
    rule = (
        alt.Chart(pd.DataFrame({"threshold": [threshold]}))
        .mark_rule(color="#d62728", strokeDash=[6, 4])
        .encode(y="threshold:Q", tooltip=[alt.Tooltip("threshold:Q", title="retraining threshold")])
    )
    return alt.layer(line, rule).properties(height=280)
