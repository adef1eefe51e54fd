"""`python -m mlops_assets.app [--address A] [--port P]`: the campaign app as `make app`, the
compose stack and the tests start it, with Streamlit's developer toolbar (its "Deploy" button,
"Rerun", settings) hidden: this is an app for analysts, not a Streamlit project."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

MAIN = Path(__file__).with_name("main.py")


def streamlit_args(address: str, port: int) -> list[str]:
    return [
        sys.executable, "-m", "streamlit", "run", str(MAIN),
        "--server.address", address, "--server.port", str(port), "--server.headless", "true",
        "--browser.gatherUsageStats", "false", "--client.toolbarMode", "minimal",
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8501)
    args = parser.parse_args(argv)
    command = streamlit_args(args.address, args.port)
    os.execv(command[0], command)


if __name__ == "__main__":
    main()
