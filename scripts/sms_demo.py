"""Play an SMS conversation through the real SMS webhook of a running stack (`make run`).

Each message goes out as Twilio would send it: a form-encoded POST signed with
X-Twilio-Signature for the webhook URL, so it exercises the same checks as production.
Defaults match the dev values scripts/run_stack.sh exports. Interactive (one message a
line from stdin) unless --script plays the canned conversation:

    make sms                       # interactive
    make sms SMS_ARGS=--script     # canned
"""

from __future__ import annotations

import argparse
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
import uuid
import xml.etree.ElementTree as ET
from typing import Iterable, Iterator, Sequence, TextIO

from twilio.request_validator import RequestValidator

SCRIPT = ("Hi", "What techniques are there?", "2", "tell me more", "HELP", "STOP")
DEMO_NUMBER = "+15550100123"  # 555-01xx: fictional
CLINIC_NUMBER = "+15550100199"


def default_url() -> str:
    port = os.environ.get("RASA_PORT", "5005")
    return os.environ.get("SMS_WEBHOOK_URL") or f"http://127.0.0.1:{port}/webhooks/sms/webhook"


def twilio_form(sender: str, body: str) -> dict[str, str]:
    """The fields Twilio's messaging webhook posts for one text, blank ones included."""
    return {
        "ToCountry": "US",
        "SmsMessageSid": (sid := f"SM{uuid.uuid4().hex}"),
        "NumMedia": "0",
        "FromCity": "",
        "SmsSid": sid,
        "From": sender,
        "To": CLINIC_NUMBER,
        "Body": body,
        "MessageSid": sid,
        "AccountSid": "AC" + "0" * 32,
        "NumSegments": "1",
        "ApiVersion": "2010-04-01",
    }


def send(url: str, token: str, form: dict[str, str], timeout: float = 30) -> tuple[int, str]:
    """POST `form` signed for `url`; (status, response body)."""
    signature = RequestValidator(token).compute_signature(url, form)
    request = urllib.request.Request(
        url,
        data=urllib.parse.urlencode(form).encode(),
        headers={"X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.status, resp.read().decode("utf-8")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")


def messages_of(twiml: str) -> list[str]:
    """The <Message> bodies of a TwiML response (none for an empty <Response/>)."""
    return [message.text or "" for message in ET.fromstring(twiml).iter("Message")]


def lines(stream: TextIO, prompt: bool) -> Iterator[str]:
    """Messages typed on `stream`, one a line, with a prompt when a person is typing."""
    while True:
        if prompt:
            print("you> ", end="", flush=True)
        line = stream.readline()
        if not line:
            return
        if line.strip():
            yield line.strip()


def play(url: str, token: str, sender: str, messages: Iterable[str], echo: bool) -> int:
    """Send each message, print the replies; 1 if the webhook refused or failed."""
    for body in messages:
        if echo:
            print(f"you> {body}")
        try:
            status, text = send(url, token, twilio_form(sender, body))
        except OSError as exc:
            print(f"cannot reach {url}: {exc} (is `make run` running?)", file=sys.stderr)
            return 1
        if status != 200:
            print(f"webhook answered {status}: {text.strip()}", file=sys.stderr)
            return 1
        replies = messages_of(text)
        for reply in replies or ["(no reply)"]:
            print("sms> " + reply.replace("\n", "\n     "))
        print()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--script", action="store_true", help="play the canned conversation instead of stdin")
    parser.add_argument("--url", default=default_url(), help="the webhook URL, as signed (default: %(default)s)")
    parser.add_argument(
        "--token",
        default=os.environ.get("TWILIO_AUTH_TOKEN", "dev-twilio-token"),
        help="the auth token the stack checks signatures with (default: $TWILIO_AUTH_TOKEN or make run's dev value)",
    )
    parser.add_argument("--from", dest="sender", default=DEMO_NUMBER, help="the patient's number (fictional)")
    args = parser.parse_args(argv)
    if args.script:
        return play(args.url, args.token, args.sender, SCRIPT, echo=True)
    interactive = sys.stdin.isatty()
    if interactive:
        print(f"Texting {args.url} as {args.sender}. Ctrl-D ends.")
    return play(args.url, args.token, args.sender, lines(sys.stdin, interactive), echo=not interactive)


if __name__ == "__main__":
    sys.exit(main())
