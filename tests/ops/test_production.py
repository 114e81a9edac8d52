"""Production mode (omt/ops/config_check.py, scripts/run_stack.sh) and what listens where.

The start-up check is a pure function, tested directly; run_stack.sh is run for real with
stand-in `rasa` and `python` programs, so the arguments it would start Rasa with can be
read without starting anything. The `stack` tests look at the sockets of the session stack.
"""

from __future__ import annotations

import ipaddress
import os
import runpy
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from omt.core.knowledge import REPO_ROOT
from omt.core.provenance import DEV_HASH_KEY
from omt.ops.config_check import MIN_SECRET_CHARS, dev_defaults, main, problems
from omt.ops.processes import free_port
from omt.ops.stack import Stack

GOOD = {
    "TWILIO_AUTH_TOKEN": "0f3c9a7e51b24d68a0c7e9f1b3d5a7c9",
    "SMS_SENDER_KEY": "kq2Vd8LxW0pR6tYz1NcH4sJb7mFe9gUa",
    "OMT_HASH_KEY": "Zr8pQe3Wn6Ty1Ux4Vb7Mc0Ld5Kf2Jg9H",
}
TOKEN = "Ap4Rj7Ws2Xe9Qd6Zc1Vf8Bt3Ng5Hm0Ky"


def test_good_production_secrets_pass() -> None:
    assert problems(GOOD, api_enabled=False) == []
    assert problems({**GOOD, "RASA_API_TOKEN": TOKEN}, api_enabled=True) == []
    assert problems({**GOOD, "RASA_JWT_SECRET": TOKEN}, api_enabled=True) == []
    assert main(env={**GOOD, "OMT_ENV": "production"}) == 0


@pytest.mark.parametrize("name", sorted(GOOD))
def test_each_missing_secret_is_named(name: str) -> None:
    env = {k: v for k, v in GOOD.items() if k != name}
    assert problems(env, api_enabled=False) == [f"{name} is not set"]
    assert problems({**env, name: ""}, api_enabled=False) == [f"{name} is not set"]


def test_development_defaults_are_refused_wherever_they_are_defined() -> None:
    script = (REPO_ROOT / "scripts" / "run_stack.sh").read_text(encoding="utf-8")
    stack_env = Stack(rasa_port=0, actions_port=0, workdir=Path()).env()
    defaults = dev_defaults()
    for name in ("TWILIO_AUTH_TOKEN", "SMS_SENDER_KEY"):
        assert stack_env[name] in defaults[name]
        assert any(f"{name}:={value}" in script for value in defaults[name])
    assert DEV_HASH_KEY in defaults["OMT_HASH_KEY"]
    for name, values in defaults.items():
        for value in values:
            found = problems({**GOOD, name: value}, api_enabled=True)
            assert any(p.startswith(f"{name} is a development default") for p in found), (name, found)


def test_short_secrets_are_refused() -> None:
    found = problems({**GOOD, "OMT_HASH_KEY": "x" * (MIN_SECRET_CHARS - 1)}, api_enabled=False)
    assert found == [f"OMT_HASH_KEY is shorter than {MIN_SECRET_CHARS} characters"]
    padded = " " * MIN_SECRET_CHARS + "abc"
    assert problems({**GOOD, "SMS_SENDER_KEY": padded}, api_enabled=False), "whitespace is not key material"


def test_the_api_needs_a_token_or_a_jwt_secret() -> None:
    assert problems(GOOD, api_enabled=True) == [
        "Rasa's HTTP API is on (RASA_ENABLE_API=1) but neither RASA_API_TOKEN nor RASA_JWT_SECRET is set"
    ]
    assert problems({**GOOD, "RASA_API_TOKEN": "short"}, api_enabled=True) == [
        f"RASA_API_TOKEN is shorter than {MIN_SECRET_CHARS} characters"
    ]
    assert problems({**GOOD, "RASA_API_TOKEN": "short"}, api_enabled=False) == [], "ignored while the API is off"
    assert main(env={"RASA_ENABLE_API": "1"}) == 1, "no API without a secret, even in development"
    assert main(env={"RASA_EXTRA_ARGS": "--enable-api --cors *"}) == 1, "nor through RASA_EXTRA_ARGS"


def test_unknown_mode_is_refused_and_development_needs_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(env={"OMT_ENV": "prod", **GOOD}) == 2
    assert "OMT_ENV must be one of development, production" in capsys.readouterr().err
    assert main(env={}) == 0 and main(env={"OMT_ENV": "development"}) == 0


def test_messages_name_variables_and_never_print_a_secret(capsys: pytest.CaptureFixture[str]) -> None:
    secret = "s3cr3t-but-too-short"
    env = {
        **GOOD,
        "OMT_ENV": "production",
        "TWILIO_AUTH_TOKEN": secret,
        "RASA_ENABLE_API": "1",
        "RASA_API_TOKEN": secret,
    }
    assert main(env=env) == 1
    err = capsys.readouterr().err
    assert "TWILIO_AUTH_TOKEN" in err and "RASA_API_TOKEN" in err and "refusing to start" in err
    assert secret not in err


# --- scripts/run_stack.sh, with stand-ins for the programs it starts ---------------------


@pytest.fixture()
def sandbox(tmp_path: Path) -> Path:
    """A copy of run_stack.sh whose .venv/bin/rasa and python (and Rasa's launcher) record their arguments."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(REPO_ROOT / "scripts" / "run_stack.sh", tmp_path / "scripts" / "run_stack.sh")
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    real_python = REPO_ROOT / ".venv" / "bin" / "python"
    stubs = {
        # `rasa run` (through our launcher, `python -m omt.rasa.run run ...`) returns at once, so
        # run_stack.sh stops the others (exec: no orphan keeps the pipes open)
        "rasa": 'echo "rasa $*" >> "$CALLS"\nif [ "$2" = actions ]; then exec sleep 30; fi\n',
        "python": (
            f'if [ "$1 $2" = "-m omt.ops.config_check" ]; then cd "{REPO_ROOT}" && exec "{real_python}" "$@"; fi\n'
            'if [ "$1 $2" = "-m omt.rasa.run" ]; then shift 2; echo "rasa $*" >> "$CALLS"; exit 0; fi\n'
            'echo "python $*" >> "$CALLS"\nexec sleep 30\n'
        ),
    }
    for name, body in stubs.items():
        path = bin_dir / name
        path.write_text("#!/usr/bin/env bash\n" + body, encoding="utf-8")
        path.chmod(0o755)
    return tmp_path


def run_stack(sandbox: Path, **env: str) -> tuple[int, str, list[str]]:
    calls = sandbox / "calls.txt"
    calls.unlink(missing_ok=True)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "SMS_", "OMT_", "RASA_"))}
    proc = subprocess.run(
        ["bash", str(sandbox / "scripts" / "run_stack.sh")],
        env={**clean, **env, "CALLS": str(calls), "TRACKER_DB": str(sandbox / "tracker.db")},
        capture_output=True,
        text=True,
        timeout=60,
        start_new_session=True,
    )
    lines = calls.read_text().splitlines() if calls.exists() else []
    return proc.returncode, proc.stderr, lines


def test_run_stack_refuses_production_defaults_before_starting_anything(sandbox: Path) -> None:
    status, err, calls = run_stack(sandbox, OMT_ENV="production", SMS_SENDER_KEY="s3cr3t-but-too-short")
    assert status != 0 and calls == []
    assert "TWILIO_AUTH_TOKEN is not set" in err and "SMS_SENDER_KEY is shorter" in err
    assert "s3cr3t-but-too-short" not in err


def test_run_stack_keeps_the_api_off_by_default_and_passes_the_token_when_on(sandbox: Path) -> None:
    status, _, calls = run_stack(sandbox)
    (rasa,) = [c for c in calls if c.startswith("rasa run --model")]
    assert status == 0 and "--enable-api" not in rasa and "--auth-token" not in rasa
    status, err, calls = run_stack(sandbox, RASA_ENABLE_API="1")
    assert status != 0 and calls == [] and "RASA_API_TOKEN" in err
    _, _, calls = run_stack(sandbox, RASA_ENABLE_API="1", RASA_API_TOKEN=TOKEN)
    assert any(f"--enable-api --auth-token {TOKEN}" in c for c in calls if c.startswith("rasa run --model"))
    _, _, calls = run_stack(sandbox, OMT_ENV="production", **GOOD, RASA_ENABLE_API="1", RASA_JWT_SECRET=TOKEN)
    assert any(f"--enable-api --jwt-secret {TOKEN}" in c for c in calls if c.startswith("rasa run --model"))


# --- what the session stack listens on ---------------------------------------------------


def listening_addresses(port: int) -> list[str]:
    """Local addresses with a listening TCP socket on `port` (from /proc, so no `ss` needed)."""
    found = []
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        if not Path(table).exists():
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, port_hex = local.split(":")
            if state == "0A" and int(port_hex, 16) == port:  # 0A: LISTEN
                raw = bytes.fromhex(address)
                # /proc prints each 32-bit word little-endian
                words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
                found.append(str(ipaddress.ip_address(words if width == 32 else raw[::-1])))
    return found


def non_loopback_address() -> str | None:
    """This machine's address on its default route, if it has one (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: routing only
        except OSError:
            return None
        address = str(probe.getsockname()[0])
    return None if ipaddress.ip_address(address).is_loopback else address


@pytest.mark.stack
@pytest.mark.parametrize("which", ["actions", "rasa"])
def test_stack_listens_on_loopback_only(stack: Stack, which: str) -> None:
    port = stack.actions_port if which == "actions" else stack.rasa_port
    assert listening_addresses(port) == ["127.0.0.1"]
    address = non_loopback_address()
    if address is None:
        pytest.skip("no non-loopback address on this machine to try")
    with socket.socket() as sock, pytest.raises(OSError):  # refused: nothing listens there
        sock.settimeout(5)
        sock.connect((address, port))


# --- the nginx config renderer (the proxy itself: tests/ops/test_nginx.py) ---------------------

RENDERER = REPO_ROOT / "scripts" / "render_nginx_conf.py"
render = runpy.run_path(str(RENDERER))["render"]
TEMPLATE = (REPO_ROOT / "deploy" / "nginx" / "omt.conf").read_text(encoding="utf-8")
VALUES = {
    "LISTEN": "127.0.0.1:8000",
    "SERVER_NAME": "_",
    "PAGES_UPSTREAM": "127.0.0.1:8080",
    "RASA_UPSTREAM": "[::1]:5005",
}


def test_renderer_fills_our_placeholders_and_leaves_nginx_variables() -> None:
    conf = render(TEMPLATE, VALUES)
    assert "${" not in conf and "listen 127.0.0.1:8000 default_server;" in conf and "server [::1]:5005;" in conf
    for variable in (
        "$binary_remote_addr",
        "$http_upgrade",
        "$connection_upgrade",
        "$upstream_http_content_security_policy",
    ):
        assert variable in conf


@pytest.mark.parametrize("value", ["127.0.0.1:80; include /etc/shadow", "x { }", "", "a b", "$host"])
def test_renderer_refuses_values_that_are_not_plain_addresses(value: str) -> None:
    with pytest.raises(ValueError, match="LISTEN"):
        render(TEMPLATE, {**VALUES, "LISTEN": value})
    with pytest.raises(ValueError, match="RASA_UPSTREAM"):
        render(TEMPLATE, {k: v for k, v in VALUES.items() if k != "RASA_UPSTREAM"})


def test_rendered_config_passes_nginx_syntax_check(tmp_path: Path) -> None:
    nginx = shutil.which("nginx", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")
    if nginx is None:
        pytest.fail("nginx missing: run scripts/install_system_deps.sh")
    conf = tmp_path / "omt.conf"
    args = ["--out", str(conf), "--listen", f"127.0.0.1:{free_port()}"]
    subprocess.run([str(REPO_ROOT / ".venv" / "bin" / "python"), str(RENDERER), *args], check=True)
    check = subprocess.run([nginx, "-t", "-p", str(tmp_path), "-c", str(conf)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    bad = subprocess.run(
        [str(REPO_ROOT / ".venv" / "bin" / "python"), str(RENDERER), "--out", "-", "--listen", "0.0.0.0:80;"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "LISTEN" in bad.stderr
