"""The nginx reverse proxy (deploy/nginx/omt.conf) in front of the session stack and the page server.

Debian's real nginx (scripts/install_system_deps.sh installs it) runs in the foreground
on a free loopback port with a config rendered by scripts/render_nginx_conf.py into a
temporary prefix. The tests check what passes, what is refused (404, 405, 413, 429), the
security headers, the socket.io origin check and WebSocket upgrade through the proxy,
and that the access log keeps no client address or query string.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator, NamedTuple
from urllib.parse import urlsplit

import pytest

from omt.bench.evaluate import contract_faults
from omt.channels.rest import MAX_BODY_BYTES, MAX_MESSAGE_CHARS
from omt.core.knowledge import REPO_ROOT, Knowledge
from omt.ops.processes import free_port, spawn, stop, wait_for_http
from omt.ops.stack import Stack
from tests.channels.test_channel_sms import form, messages_of, signed
from tests.ops.test_web_server import _socket_turns, page_server

pytestmark = pytest.mark.stack

RENDER = REPO_ROOT / "scripts" / "render_nginx_conf.py"
CLINIC = "http://127.0.0.1:8080"  # in the stack's default CLINIC_ORIGINS
FOREIGN = "https://evil.example"
STRICT_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"


class Proxy(NamedTuple):
    url: str
    port: int
    prefix: Path
    conf: str
    pages: str  # host:port of the page server


def nginx_binary() -> str:
    found = shutil.which("nginx", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"]))
    if found is None:
        pytest.fail("nginx missing: run scripts/install_system_deps.sh")
    return found


@pytest.fixture(scope="module")
def proxy(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    prefix = tmp_path_factory.mktemp("nginx")
    prefix.chmod(0o755)  # nginx's workers drop root: they must reach the prefix
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    with page_server(origin, prefix / "web.log") as pages:
        conf = prefix / "omt.conf"
        upstreams = ["--pages", urlsplit(pages).netloc, "--rasa", f"127.0.0.1:{stack.rasa_port}"]
        render = [sys.executable, str(RENDER), "--out", str(conf), "--listen", f"127.0.0.1:{port}", *upstreams]
        subprocess.run(render, check=True)
        proc = spawn([nginx_binary(), "-p", str(prefix), "-c", str(conf), "-g", "daemon off;"], prefix / "nginx.out")
        try:
            wait_for_http(f"{origin}/kiosk", 30, proc)
            yield Proxy(origin, port, prefix, conf.read_text(), urlsplit(pages).netloc)
        finally:
            stop([proc])  # SIGTERM: nginx's fast shutdown


class Response(NamedTuple):
    status: int
    headers: http.client.HTTPMessage
    body: bytes


def request(
    proxy: Proxy,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    source: str = "127.0.0.1",
) -> Response:
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=60, source_address=(source, 0))
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return Response(resp.status, resp.headers, resp.read())
    finally:
        conn.close()


def rest(proxy: Proxy, payload: object, content_type: str = "application/json") -> Response:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return request(proxy, "POST", "/webhooks/rest/webhook", body, {"Content-Type": content_type})


# --- what passes -------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/kiosk", "/static/widget.js", "/static/vendor/socket.io.min.js"])
def test_pages_pass_with_one_set_of_security_headers(proxy: Proxy, path: str) -> None:
    resp = request(proxy, "GET", path)
    assert resp.status == 200
    (csp,) = resp.headers.get_all("Content-Security-Policy") or []
    assert f"connect-src {proxy.url} ws://127.0.0.1:{proxy.port}" in csp, "the page server's own CSP"
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
    for name, value in (("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "no-referrer")):
        assert resp.headers.get_all(name) == [value]
    assert resp.headers.get_all("X-Frame-Options") == ["DENY"]
    assert resp.headers.get("Server") == "nginx", "no version"


def test_rest_webhook_passes(proxy: Proxy, knowledge: Knowledge) -> None:
    resp = rest(proxy, {"sender": f"nginx-{uuid.uuid4().hex}", "message": "does it hurt?"})
    assert resp.status == 200
    assert contract_faults(json.loads(resp.body), knowledge) == ("how_it_feels", [])
    assert resp.headers["Content-Security-Policy"] == STRICT_CSP
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert "Strict-Transport-Security" not in resp.headers, "HSTS only with TLS (commented in the template)"


def test_sms_webhook_passes_with_the_twilio_signature(proxy: Proxy, stack: Stack) -> None:
    env = stack.env()
    fields = form("what is omt", sender=f"+1555{uuid.uuid4().int % 10**7:07d}")
    body, signature = signed(fields, env["SMS_WEBHOOK_URL"], env["TWILIO_AUTH_TOKEN"])
    headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature}
    resp = request(proxy, "POST", "/webhooks/sms/webhook", body, headers)
    assert resp.status == 200 and len(messages_of(resp.body.decode())) == 1
    forged = request(proxy, "POST", "/webhooks/sms/webhook", body, {**headers, "X-Twilio-Signature": "AAAA"})
    assert forged.status == 403


def test_socketio_conversation_through_the_proxy(proxy: Proxy, knowledge: Knowledge) -> None:
    _, turns = _socket_turns(proxy.url, ["does it hurt?"], None)
    ((reply,),) = turns
    assert contract_faults([reply], knowledge) == ("how_it_feels", [])


def test_socketio_origin_check_through_the_proxy(proxy: Proxy) -> None:
    path = "/socket.io/?EIO=4&transport=polling"
    ok = request(proxy, "GET", path, headers={"Origin": CLINIC})
    assert ok.status == 200 and ok.headers["Access-Control-Allow-Origin"] == CLINIC
    refused = request(proxy, "GET", path, headers={"Origin": FOREIGN})
    assert refused.status == 400 and "Access-Control-Allow-Origin" not in refused.headers


def websocket_handshake(proxy: Proxy, origin: str) -> bytes:
    """The first response line and headers to a WebSocket upgrade of the socket.io path."""
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1",
        f"Host: 127.0.0.1:{proxy.port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        f"Origin: {origin}",
    ]
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=20) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    return data


def test_websocket_upgrade_passes_for_clinic_origins_only(proxy: Proxy) -> None:
    upgraded = websocket_handshake(proxy, CLINIC)
    assert upgraded.startswith(b"HTTP/1.1 101"), upgraded[:200]
    assert b"upgrade: websocket" in upgraded.lower()
    assert websocket_handshake(proxy, FOREIGN).startswith(b"HTTP/1.1 400")


# --- what is refused ---------------------------------------------------------------------

BLOCKED = [
    ("GET", "/conversations/x/tracker"),
    ("POST", "/conversations/x/tracker/events"),
    ("GET", "/model"),
    ("PUT", "/model"),
    ("POST", "/model/parse"),
    ("GET", "/status"),
    ("GET", "/version"),
    ("GET", "/webhooks/rest/"),
    ("GET", "/webhooks/sms/"),
    ("GET", "/webhooks/socketio/"),
    ("GET", "/healthz"),
    ("GET", "/webhook"),  # the action server's paths
    ("POST", "/webhook"),
    ("GET", "/health"),
    ("GET", "/actions"),
    ("GET", "/static/../omt/ops/web.py"),
    ("GET", "/static/%2e%2e/omt/ops/web.py"),
]


@pytest.mark.parametrize(("method", "path"), BLOCKED, ids=[f"{m} {p}" for m, p in BLOCKED])
def test_everything_else_is_404(proxy: Proxy, method: str, path: str) -> None:
    resp = request(proxy, method, path, body=b"{}" if method in ("POST", "PUT") else None)
    assert resp.status == 404
    assert resp.headers["Content-Security-Policy"] == STRICT_CSP, "nginx's own answers carry the headers too"


def test_the_action_server_is_not_an_upstream(proxy: Proxy, stack: Stack) -> None:
    """nginx proxies to the page server and Rasa (webhooks, and sticky for socket.io), nothing else."""
    rasa = f"127.0.0.1:{stack.rasa_port}"
    assert re.findall(r"^\s*server\s+(\S+);", proxy.conf, re.MULTILINE) == [proxy.pages, rasa, rasa]
    assert set(re.findall(r"proxy_pass\s+(\S+);", proxy.conf)) == {
        "http://omt_pages",
        "http://omt_rasa",
        "http://omt_rasa_sticky",
    }


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/webhooks/rest/webhook"), ("GET", "/webhooks/sms/webhook"), ("POST", "/kiosk")]
)
def test_wrong_methods_are_405(proxy: Proxy, method: str, path: str) -> None:
    assert request(proxy, method, path, body=b"x" if method == "POST" else None).status == 405


def test_bodies_over_the_cap_are_413(proxy: Proxy) -> None:
    assert f"client_max_body_size {MAX_BODY_BYTES // 1024}k;" in proxy.conf, "one cap, the channel's"
    # The longest message the REST channel takes, 10,000 characters each written as a JSON
    # surrogate pair, fits under the cap.
    longest = json.dumps({"sender": "x" * 128, "message": "\U0001f600" * MAX_MESSAGE_CHARS})
    assert len(longest.encode()) <= MAX_BODY_BYTES
    small = json.dumps({"sender": f"nginx-{uuid.uuid4().hex}", "message": "hi"}).encode()
    at_cap = small[:-1] + b" " * (MAX_BODY_BYTES - len(small)) + b"}"  # JSON may pad with spaces
    assert len(at_cap) == MAX_BODY_BYTES and rest(proxy, at_cap).status == 200
    over = rest(proxy, at_cap[:-1] + b" }")
    assert over.status == 413 and over.headers["X-Content-Type-Options"] == "nosniff"


def test_too_many_requests_from_one_client_are_429(proxy: Proxy) -> None:
    """10 requests/s with bursts of 30 per client address; 127.0.0.2 has its own allowance."""
    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = list(
            pool.map(lambda _: request(proxy, "GET", "/static/kiosk.css", source="127.0.0.2").status, range(100))
        )
    assert statuses.count(200) >= 30, "the burst passes"
    assert statuses.count(429) >= 10 and set(statuses) == {200, 429}
    assert request(proxy, "GET", "/static/kiosk.css").status == 200, "other clients are not affected"


def test_access_log_has_no_client_address_or_query(proxy: Proxy) -> None:
    request(proxy, "GET", "/socket.io/?EIO=4&transport=polling&secret=abc", headers={"Origin": CLINIC})
    with contextlib.suppress(FileNotFoundError):
        log = (proxy.prefix / "access.log").read_text()
        assert log.strip(), "requests are logged"
        assert "127.0.0." not in log and "secret=abc" not in log and "EIO=" not in log
        return
    pytest.fail("no access log")
