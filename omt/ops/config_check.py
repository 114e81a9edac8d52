"""Start-up check for production mode: refuse to run with a missing, development or weak secret.

    OMT_ENV=production python -m omt.ops.config_check      # scripts/run_stack.sh runs this first

`OMT_ENV` is `development` (the default) or `production`. In production every secret
below must be set, must not be one of the development/test defaults that ship in this
repository (scripts/run_stack.sh, omt/core/provenance.py DEV_HASH_KEY, omt/ops/stack.py), and must
be at least `MIN_SECRET_CHARS` long:

- TWILIO_AUTH_TOKEN: verifies that SMS webhooks come from Twilio.
- SMS_SENDER_KEY: keys the hash that replaces phone numbers.
- OMT_HASH_KEY: keys the hash of conversation ids in the provenance log.
- RASA_API_TOKEN or RASA_JWT_SECRET, only when Rasa's HTTP API is on (`RASA_ENABLE_API=1`
  or `--enable-api` in RASA_EXTRA_ARGS): without one, anyone reaching Rasa could read and
  rewrite every conversation. This one is required in development too.

Why a separate check: Rasa and the channels start happily on defaults (that is what makes
`make run` work out of the box), so production needs one place that says no, before any
process binds a port. Messages name the variable, never its value.
"""

from __future__ import annotations

import inspect
import os
import re
import sys
from pathlib import Path
from typing import Mapping, Sequence

from omt.core.knowledge import REPO_ROOT
from omt.core.provenance import DEV_HASH_KEY
from omt.ops.stack import Stack

ENVIRONMENTS = ("development", "production")
MIN_SECRET_CHARS = 32  # a Twilio auth token is 32 hex characters; 128 bits of key at the least
SECRETS = ("TWILIO_AUTH_TOKEN", "SMS_SENDER_KEY", "OMT_HASH_KEY")
API_SECRETS = ("RASA_API_TOKEN", "RASA_JWT_SECRET")
RUN_STACK = REPO_ROOT / "scripts" / "run_stack.sh"
_SHELL_DEFAULT = re.compile(r"\$\{(\w+):=([^}]*)\}")  # ${NAME:=value} in run_stack.sh
_KEYWORD_VALUE = re.compile(r'\b(\w+)="([^"{}]*)"')  # NAME="value" in Stack.env()


def dev_defaults(run_stack: Path = RUN_STACK) -> dict[str, set[str]]:
    """The development and test values of each secret, read from where they are defined."""
    defaults: dict[str, set[str]] = {name: set() for name in SECRETS + API_SECRETS}
    if run_stack.exists():
        for name, value in _SHELL_DEFAULT.findall(run_stack.read_text(encoding="utf-8")):
            if name in defaults:
                defaults[name].add(value)
    for name, value in _KEYWORD_VALUE.findall(inspect.getsource(Stack.env)):
        if name in defaults:
            defaults[name].add(value)
    defaults["OMT_HASH_KEY"].add(DEV_HASH_KEY)
    return defaults


def api_on(env: Mapping[str, str]) -> bool:
    """Whether Rasa's HTTP API will be on: RASA_ENABLE_API=1, or `--enable-api` passed through."""
    return env.get("RASA_ENABLE_API", "") == "1" or "--enable-api" in env.get("RASA_EXTRA_ARGS", "").split()


def _secret_problem(name: str, value: str, defaults: set[str]) -> str | None:
    if not value:
        return f"{name} is not set"
    if value in defaults:
        return f"{name} is a development default from this repository; set a random secret"
    if len(value.strip()) < MIN_SECRET_CHARS:
        return f"{name} is shorter than {MIN_SECRET_CHARS} characters"
    return None


def api_problems(env: Mapping[str, str]) -> list[str]:
    """The API needs a token or a JWT secret whatever the mode: it can rewrite conversations."""
    if any(env.get(name) for name in API_SECRETS):
        return []
    return ["Rasa's HTTP API is on (RASA_ENABLE_API=1) but neither RASA_API_TOKEN nor RASA_JWT_SECRET is set"]


def problems(env: Mapping[str, str], api_enabled: bool) -> list[str]:
    """Everything wrong with the production secrets in `env`; empty when it may start."""
    defaults = dev_defaults()
    found = [p for name in SECRETS if (p := _secret_problem(name, env.get(name, ""), defaults[name]))]
    if api_enabled:
        found += api_problems(env)
        found += [
            p for name in API_SECRETS if env.get(name) and (p := _secret_problem(name, env[name], defaults[name]))
        ]
    return found


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """Exit 0 when the process may start; 1 with one line per problem, 2 for an unknown OMT_ENV."""
    del argv  # no options: everything comes from the environment
    env = os.environ if env is None else env
    mode = env.get("OMT_ENV", "") or "development"
    if mode not in ENVIRONMENTS:
        print(f"config check: OMT_ENV must be one of {', '.join(ENVIRONMENTS)}, not {mode!r}", file=sys.stderr)
        return 2
    api = api_on(env)
    found = problems(env, api) if mode == "production" else (api_problems(env) if api else [])
    for problem in found:
        print(f"config check: {problem}", file=sys.stderr)
    if found:
        print(f"config check: refusing to start ({mode} mode, OMT_ENV={mode})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
