"""The action server: Rasa SDK's own command line, `python -m omt.rasa.actions_run --actions actions ...`.

The same server as `rasa run actions` (both call `rasa_sdk.__main__`), started without the
CORS layer Rasa SDK installs even when no origin is allowed (omt/rasa/cors.py): Rasa calls
this server from its own process on loopback, never a browser. With `--cors` given, the
layer is installed as before. The arguments are Rasa SDK's own.
"""

from __future__ import annotations

import sys
from typing import Sequence

import rasa_sdk.endpoint
from rasa_sdk.__main__ import main as sdk_main

from omt.rasa.cors import only_with_origins


def main(argv: Sequence[str] | None = None) -> None:
    """Wrap Rasa SDK's CORS set-up, then run its CLI with `argv` (default: this process's arguments)."""
    rasa_sdk.endpoint.configure_cors = only_with_origins(rasa_sdk.endpoint.configure_cors)
    if argv is not None:
        sys.argv = ["rasa_sdk", *argv]
    sdk_main()


if __name__ == "__main__":
    main()
