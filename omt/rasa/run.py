"""Rasa's command line, after `omt.rasa.patches.install()`: `python -m omt.rasa.run run --model ...`.

The one place a Rasa process installs our patches to Rasa (the version check first):
`make run` (scripts/run_stack.sh), the test stack and the cluster (omt/ops/stack.py) and
the Makefile's other Rasa commands start Rasa through it. The arguments are Rasa's own.
On another Rasa version, or a nonsense `OMT_ACTION_TIMEOUT`, it stops with one line on
stderr and exit status 1, before Rasa starts. The action server runs Rasa SDK code only,
which none of these patches touch; it has its own launcher, omt/rasa/actions_run.py.
"""

from __future__ import annotations

import sys
from typing import Sequence

from rasa.__main__ import main as rasa_main

from omt.rasa import patches


def main(argv: Sequence[str] | None = None) -> None:
    """Install the patches, then run Rasa's CLI with `argv` (default: this process's arguments)."""
    try:
        patches.install()
    except patches.StartRefusedError as refused:
        raise SystemExit(f"omt: refusing to start: {refused}") from None
    sys.argv = ["rasa", *(sys.argv[1:] if argv is None else argv)]
    rasa_main()


if __name__ == "__main__":
    main()
