"""Full-scale benchmark of the pipeline: `python -m bench` (see bench/run.py)."""
