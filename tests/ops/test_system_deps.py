"""`make test` and `make cluster` set up the machine first: scripts/install_system_deps.sh's paths.

Nothing is installed or removed: the script's environment overrides pick the packages to
check, the user it acts as and the apt-get it calls (here a fake one that records its
arguments).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "install_system_deps.sh"
MISSING = "omt-test-no-such-package"
needs_dpkg = pytest.mark.skipif(shutil.which("dpkg-query") is None, reason="no dpkg: not a Debian machine")


def run_script(tmp_path: Path, packages: str, **env: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run the script with a fake apt-get; (the result, the apt-get calls it made)."""
    calls = tmp_path / "apt-calls"
    apt = tmp_path / "apt-get"
    apt.write_text(f'#!/bin/sh\necho "$*" >> {calls}\n')
    apt.chmod(0o755)
    environ = {**os.environ, "SYSTEM_DEPS": packages, "SYSTEM_DEPS_APT": str(apt), **env}
    result = subprocess.run([str(SCRIPT)], cwd=REPO, env=environ, capture_output=True, text=True, timeout=60)
    return result, calls.read_text().splitlines() if calls.exists() else []


@needs_dpkg
def test_everything_present_is_a_quick_check_without_apt(tmp_path: Path) -> None:
    result, calls = run_script(tmp_path, "bash coreutils", SYSTEM_DEPS_UID="1000")
    assert result.returncode == 0 and "already installed" in result.stdout
    assert calls == [], "no apt-get update when nothing is missing"


@needs_dpkg
def test_as_root_only_the_missing_packages_are_installed(tmp_path: Path) -> None:
    result, calls = run_script(tmp_path, f"bash {MISSING}", SYSTEM_DEPS_UID="0")
    assert result.returncode == 0, result.stderr
    assert calls == ["update -q", f"install -y -q --no-install-recommends {MISSING}"]


def test_not_root_stops_at_once_with_the_one_command_to_run(tmp_path: Path) -> None:
    result, calls = run_script(tmp_path, MISSING, SYSTEM_DEPS_UID="1000")
    assert result.returncode == 2 and calls == []
    assert MISSING in result.stderr and "sudo scripts/install_system_deps.sh" in result.stderr


def test_without_apt_it_stops_and_says_what_is_missing(tmp_path: Path) -> None:
    result, calls = run_script(tmp_path, MISSING, SYSTEM_DEPS_UID="0", SYSTEM_DEPS_APT=str(tmp_path / "none"))
    assert result.returncode == 2 and calls == []
    assert MISSING in result.stderr and "no apt-get" in result.stderr


def test_a_dry_run_prints_the_apt_commands_and_runs_none(tmp_path: Path) -> None:
    result, calls = run_script(tmp_path, MISSING, SYSTEM_DEPS_UID="0", SYSTEM_DEPS_DRY_RUN="1")
    assert result.returncode == 0 and calls == []
    assert "dry run:" in result.stdout and f"--no-install-recommends {MISSING}" in result.stdout


@pytest.mark.parametrize("target", ["test", "cluster"])
def test_make_runs_the_install_before_anything_else(target: str) -> None:
    """`make -n` lists the recipes in the order make would run them; the install comes first."""
    result = subprocess.run(
        ["make", "-n", "--no-print-directory", target], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "scripts/install_system_deps.sh"


def test_ci_adds_nothing_to_the_set_up() -> None:
    commands = [
        line.strip()
        for line in (REPO / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert [c for c in commands if c.split()[-2:] == ["make", "test"]], "CI runs the README's `make test`"
    assert not [c for c in commands if "install_system_deps" in c or c.startswith("make setup")]
