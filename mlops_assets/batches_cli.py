"""`mlops-batches register [BATCH ...]`: what the inference sensor does before it requests a run,
for CI jobs and scripts that run `dagster asset materialize` without a daemon.

Each batch (a key like `p99_extrac` or a path to its file) is registered as a partition of
`inference_batches` in the instance at $DAGSTER_HOME, after checking that its file is waiting in
the inference folder; with no batch named, every file waiting there is. The registered keys are
printed one per line, so a script can pass them to `--partition`. A name that cannot be a batch,
or a batch with no file, is refused on stderr with exit code 2 and nothing is registered.
The file's content is checked by the run that scores it: a rejected file fails that run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import dagster as dg

from mlops_assets.batch_files import BatchNameError, batch_key, batch_path
from mlops_assets.defs.partitions import inference_batches
from mlops_assets.inference_folder import candidate_files
from mlops_assets.settings import PipelineSettings


def batches_to_register(names: list[str], inference_dir: Path) -> list[str]:
    """The batch keys `names` stand for (all waiting files when empty); `ValueError` says which is wrong."""
    if not names:
        return [batch_key(path) for path in candidate_files(inference_dir)]
    keys = []
    for name in names:
        key = batch_key(name if name.lower().endswith(".csv") else f"{name}.csv")
        if not batch_path(inference_dir, key).is_file():
            raise ValueError(f"{name}: no file for batch {key} in {inference_dir} (drop {key}.csv there first)")
        keys.append(key)
    return keys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mlops-batches", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    register = commands.add_parser("register", help="register inference files as partitions of inference_batches")
    register.add_argument("batches", nargs="*", help="batch keys or file paths; default: every file waiting in the inference folder")
    args = parser.parse_args(argv)

    settings = PipelineSettings.from_env()
    try:
        keys = batches_to_register(args.batches, settings.inference_dir)
    except (BatchNameError, ValueError) as error:
        print(f"mlops-batches: {error}", file=sys.stderr)
        return 2
    if not keys:
        print(f"mlops-batches: no batch file waiting in {settings.inference_dir}", file=sys.stderr)
        return 2
    with dg.DagsterInstance.get() as instance:
        known = set(instance.get_dynamic_partitions(inference_batches.name))
        instance.add_dynamic_partitions(inference_batches.name, [key for key in keys if key not in known])
    print("\n".join(keys))
    return 0


if __name__ == "__main__":
    sys.exit(main())
