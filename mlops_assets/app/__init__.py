"""The campaign team's Streamlit view of the warehouse: batches, business value, customers,
drift, and an upload that validates a file before it reaches the inference folder.

Start it with `make app` (http://127.0.0.1:8501). The data functions live in `reader.py` and
`upload.py` and need no Streamlit; `main.py` only lays them out.
"""
