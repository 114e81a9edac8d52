#!/usr/bin/env bash
# Create .venv with the Python named in .python-version (Rasa 3.6 needs 3.8-3.10)
# and install the locked requirements. Idempotent: `make setup` only calls it when
# requirements.txt, constraints.txt, pyproject.toml or .python-version changed.
set -euo pipefail
cd "$(dirname "$0")/.."
want="$(tr -d '[:space:]' < .python-version)"
minor="${want%.*}"
py=""
for cand in \
  "${PYENV_ROOT:-$HOME/.pyenv}/versions/$want/bin/python" \
  "$(command -v "python$minor" || true)" \
  "$(command -v python3 || true)"; do
  if [ -n "$cand" ] && [ -x "$cand" ] && "$cand" -c "import sys; sys.exit(0 if sys.version.startswith('$minor.') else 1)" 2>/dev/null; then
    py="$cand"; break
  fi
done
if [ -z "$py" ]; then
  echo "error: Python $minor is required (Rasa 3.6 supports 3.8-3.10); .python-version asks for $want." >&2
  echo "       Install it (e.g. 'pyenv install $want') and run 'make setup' again." >&2
  exit 1
fi
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c "import sys; sys.exit(0 if sys.version.startswith('$minor.') else 1)"; then
  rm -rf .venv
  "$py" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check "pip<25"
# requirements.txt pins every package (made by `make lock` from requirements.in).
.venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.txt -c constraints.txt
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps -e .
echo "venv ready: $(.venv/bin/python --version) in .venv"
