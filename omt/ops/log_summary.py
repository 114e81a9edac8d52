"""Summarise the provenance log: `python -m omt.ops.log_summary logs/replies.jsonl`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from omt.core.provenance import summarise


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    path = Path(args[0] if args else "logs/replies.jsonl")
    if not path.exists():
        print(f"no provenance log at {path} (it is written by the action server)", file=sys.stderr)
        return 1
    with path.open(encoding="utf-8") as handle:
        summary = summarise(handle)
    print("answers per id:")
    for answer_id, count in summary["answers"].items():
        print(f"  {answer_id:24s} {count}")
    print("per channel and day:")
    for key, figures in summary["rates"].items():
        rates = ", ".join(f"{k} {v:.1%}" for k, v in figures.items() if k.endswith("_rate"))
        print(f"  {key}: {figures['replies']} replies; {rates}")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
