"""Fill the nginx template (deploy/nginx/omt.conf) with addresses: nginx config has no variables of ours.

    python scripts/render_nginx_conf.py --out build/nginx/omt.conf \\
        [--listen 127.0.0.1:8000] [--server-name _] [--pages 127.0.0.1:8080] [--rasa 127.0.0.1:5005 ...]

Defaults come from NGINX_LISTEN, SERVER_NAME, WEB_PORT and RASA_PORT. Like envsubst, but
only the template's ${UPPER_CASE} names are replaced (nginx's own $variables are lower
case and stay), every one must get a value, and values are checked to be plain addresses
or names, so none can smuggle a directive (`;`, `{`, spaces) into the config.

`--rasa` may be given once per Rasa replica (`make cluster` gives two): a template line
that names a placeholder with several values is repeated once per value, so the upstream
block gets one `server` line per replica.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path
from typing import Mapping, Sequence

TEMPLATE = Path(__file__).resolve().parent.parent / "deploy" / "nginx" / "omt.conf"
PLACEHOLDER = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")
SAFE_VALUE = re.compile(r"[A-Za-z0-9._:\[\]*-]+")
Value = str | Sequence[str]  # one value, or several: the line is repeated per value


def _values(value: Value) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _render_line(line: str, values: Mapping[str, Value]) -> str:
    several = {name for name in PLACEHOLDER.findall(line) if len(_values(values[name])) > 1}
    if len(several) > 1:
        raise ValueError(f"one line names several multi-valued placeholders: {', '.join(sorted(several))}")
    if not several:
        return PLACEHOLDER.sub(lambda m: _values(values[m.group(1)])[0], line)
    (name,) = several

    def one(item: str) -> str:
        return PLACEHOLDER.sub(lambda m: item if m.group(1) == name else _values(values[m.group(1)])[0], line)

    return "".join(one(item) for item in _values(values[name]))


def render(template: str, values: Mapping[str, Value]) -> str:
    """The template with each ${NAME} replaced; ValueError for a missing name or an unsafe value.

    A name with several values repeats each line that names it, once per value, in order.
    """
    missing = sorted(set(PLACEHOLDER.findall(template)) - set(values))
    if missing:
        raise ValueError(f"no value for {', '.join(missing)}")
    empty = sorted(name for name, value in values.items() if not _values(value))
    if empty:
        raise ValueError(f"no value for {', '.join(empty)}")
    unsafe = sorted(name for name, value in values.items() if not all(SAFE_VALUE.fullmatch(v) for v in _values(value)))
    if unsafe:
        raise ValueError(f"not a plain address or name: {', '.join(unsafe)}")
    return "".join(_render_line(line, values) for line in template.splitlines(keepends=True))


def main(argv: Sequence[str] | None = None) -> int:
    env = os.environ
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--template", type=Path, default=TEMPLATE)
    parser.add_argument("--out", type=Path, required=True, help="the rendered config (- for stdout)")
    parser.add_argument("--listen", default=env.get("NGINX_LISTEN", "127.0.0.1:8000"), help="nginx `listen` value")
    parser.add_argument("--server-name", default=env.get("SERVER_NAME", "_"))
    parser.add_argument("--pages", default=f"127.0.0.1:{env.get('WEB_PORT', '8080')}", help="page server host:port")
    parser.add_argument(
        "--rasa", action="append", help="Rasa host:port, once per replica (default 127.0.0.1:$RASA_PORT)"
    )
    args = parser.parse_args(argv)
    values: dict[str, Value] = {
        "LISTEN": args.listen,
        "SERVER_NAME": args.server_name,
        "PAGES_UPSTREAM": args.pages,
        "RASA_UPSTREAM": args.rasa or [f"127.0.0.1:{env.get('RASA_PORT', '5005')}"],
    }
    try:
        text = render(args.template.read_text(encoding="utf-8"), values)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if str(args.out) == "-":
        sys.stdout.write(text)
    else:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
