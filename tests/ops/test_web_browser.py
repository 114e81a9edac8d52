"""The widget and the kiosk in real headless Chromium (Debian's), against the running stack.

The browser opens the pages at http://127.0.0.1:8080, a clinic origin the socket.io
channel accepts by default, so the shared session stack needs no special settings;
Playwright routes that origin to our page server on a free port (with its real headers,
CSP included), lets requests to the stack through, and aborts and records anything else
(so a third-party request fails the test). Screenshots go to screenshots/ (git-ignored); the
`docs` ones are refreshed for the README.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Iterator

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Dialog, Locator, Page, Route, expect, sync_playwright

from omt.core.knowledge import REPO_ROOT, Knowledge
from omt.core.web_texts import load_web_texts
from omt.ops.stack import Stack
from tests.ops.test_web_server import page_server

pytestmark = pytest.mark.stack

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    # Pages fulfilled by Playwright's router count as "public" to Chromium's Local Network
    # Access checks, which then refuse their requests to the loopback stack. In real use the
    # pages come straight from the page server, so this only undoes a test-harness artefact.
    "--disable-features=LocalNetworkAccessChecks",
]
CLINIC = "http://127.0.0.1:8080"
SCREENSHOTS = REPO_ROOT / "screenshots"
DOCS = REPO_ROOT / "docs"
AXE = REPO_ROOT / "web" / "node_modules" / "axe-core" / "axe.min.js"
REPLY_TIMEOUT = 30_000
XSS = "<img src=x onerror=alert(1)>"

# All targets we draw, in the page and in open shadow roots, with their size.
TARGET_SIZES_JS = """() => {
  const out = [];
  const visit = (root) => {
    for (const el of root.querySelectorAll('button, input, summary, select, textarea, [role=button], .omt-msg a')) {
      const r = el.getBoundingClientRect();
      if (r.width && r.height) out.push({what: el.outerHTML.slice(0, 80), w: r.width, h: r.height});
    }
    for (const el of root.querySelectorAll('*')) if (el.shadowRoot) visit(el.shadowRoot);
  };
  visit(document);
  return out;
}"""


@pytest.fixture(scope="module")
def pages(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Our page server on a free port, told the stack's socket.io URL."""
    with page_server(stack.url, tmp_path_factory.mktemp("web") / "web.log", {"CLINIC_ORIGINS": ""}) as base:
        yield base


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} missing: run scripts/install_system_deps.sh")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class Watch:
    """What a page did that it must not: third-party requests, CSP refusals, JS dialogs."""

    def __init__(self) -> None:
        self.foreign: list[str] = []
        self.console: list[str] = []
        self.dialogs: list[str] = []
        self.errors: list[str] = []

    def check(self) -> None:
        assert not self.foreign, f"requests outside our servers: {self.foreign}"
        assert not self.dialogs, f"script ran: {self.dialogs}"
        assert not self.errors, f"page errors: {self.errors}"
        refused = [m for m in self.console if "Content Security Policy" in m or "Refused to" in m]
        assert not refused, refused


@pytest.fixture
def page(browser: Browser, pages: str, stack: Stack) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 860}, reduced_motion="reduce")
    watch = Watch()

    def route(r: Route) -> None:
        url = r.request.url
        if url.startswith(CLINIC + "/"):
            r.fulfill(response=r.fetch(url=pages + url[len(CLINIC) :]))
        elif url.startswith(stack.url + "/"):
            r.continue_()
        else:
            watch.foreign.append(url)
            r.abort()

    context.route("**/*", route)
    pg = context.new_page()

    def on_dialog(dialog: Dialog) -> None:
        watch.dialogs.append(dialog.message)
        dialog.dismiss()

    def on_console(msg: ConsoleMessage) -> None:
        watch.console.append(msg.text)

    pg.on("dialog", on_dialog)
    pg.on("console", on_console)
    pg.on("pageerror", lambda exc: watch.errors.append(str(exc)))
    pg.watch = watch  # type: ignore[attr-defined]
    yield pg
    try:
        watch.check()
        assert context.cookies() == [], "no cookies"
        assert pg.evaluate("() => localStorage.length") == 0, "sessionStorage at most"
    finally:
        context.close()


def shoot(page: Page, name: str, docs: bool = False) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path))
    if docs:
        DOCS.mkdir(exist_ok=True)
        shutil.copyfile(path, DOCS / f"{name}.png")


def storage(page: Page, key: str) -> dict[str, Any]:
    raw = page.evaluate("(key) => sessionStorage.getItem(key)", key)
    return json.loads(raw) if raw else {}


def axe_violations(page: Page) -> list[dict[str, Any]]:
    """Serious and critical axe-core findings (axe from npm, injected by the test driver).

    axe itself tries an inline style while it runs, which our CSP refuses: that refusal
    is axe's, not the page's, so it is dropped from the page's console record. `preload`
    is off because axe would otherwise fetch the stylesheets itself, outside connect-src.
    """
    console: list[str] = page.watch.console  # type: ignore[attr-defined]
    seen = len(console)
    page.evaluate(AXE.read_text(encoding="utf-8"))
    found: list[dict[str, Any]] = page.evaluate(
        """async () => {
          const r = await axe.run(document, {resultTypes: ['violations'], preload: false});
          return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                         nodes: v.nodes.map(n => n.target.join(' '))}));
        }"""
    )
    page.wait_for_timeout(300)
    console[seen:] = [m for m in console[seen:] if "Applying inline style" not in m]
    return [v for v in found if v["impact"] in ("serious", "critical")]


def small_targets(page: Page) -> list[dict[str, Any]]:
    return [t for t in page.evaluate(TARGET_SIZES_JS) if t["w"] < 44 or t["h"] < 44]


def tab_to(page: Page, target: Locator, limit: int = 40) -> None:
    """Press Tab until `target` has focus: proof that the keyboard alone gets there."""
    for _ in range(limit):
        if target.evaluate("el => (el.getRootNode().activeElement || document.activeElement) === el"):
            return
        page.keyboard.press("Tab")
    pytest.fail(f"Tab never reached {target}")


def bot_reply(scope: Page | Locator, answer_id: str) -> Locator:
    reply = scope.locator(f".omt-msg--bot[data-answer-id='{answer_id}']").last
    expect(reply).to_be_visible(timeout=REPLY_TIMEOUT)
    return reply


# ---- the website widget -------------------------------------------------------------


def open_widget(page: Page) -> Locator:
    page.goto(CLINIC + "/")
    launcher = page.get_by_role("button", name="Questions about OMT?")
    expect(launcher).to_be_visible()
    tab_to(page, launcher)
    page.keyboard.press("Enter")
    panel = page.locator(".omt-panel")
    expect(panel).to_be_visible()
    expect(page.get_by_label("Type your question")).to_be_focused()
    bot_reply(panel, "greet")
    return panel


def ask(page: Page, text: str) -> None:
    box = page.get_by_label("Type your question")
    box.fill(text)
    box.press("Enter")


def test_widget_answers_with_its_source(page: Page, knowledge: Knowledge) -> None:
    panel = open_widget(page)
    log = panel.get_by_role("log")
    assert log.get_attribute("aria-live") == "polite"
    expect(panel.get_by_role("button", name="Send")).to_be_visible()
    ask(page, "does it hurt?")
    reply = bot_reply(panel, "how_it_feels")
    expect(reply).to_contain_text("It should not hurt")
    source = reply.locator("details.omt-source")
    summary = source.locator("summary")
    src = knowledge.source
    for words in ("Source", src.publisher, src.reviewed_by, src.reviewed_on_words):
        expect(summary).to_contain_text(words)
    quote = source.locator("blockquote").first
    expect(quote).to_be_hidden()
    summary.focus()
    page.keyboard.press("Enter")  # the disclosure opens from the keyboard too
    expect(quote).to_be_visible()
    expect(quote).to_contain_text("It should not hurt")
    expect(source).to_contain_text(knowledge.entries["how_it_feels"].section)
    assert small_targets(page) == []
    summary.evaluate("el => el.blur()")
    reply.evaluate("el => { el.parentElement.scrollTop = el.offsetTop - 8; }")  # answer and source in view
    shoot(page, "widget", docs=True)
    stored = storage(page, "omt-widget")
    assert len(stored["sessionId"]) == 32
    assert stored["messages"][-1]["custom"]["answer_id"] == "how_it_feels"


def test_widget_quick_reply_by_click_and_keyboard(page: Page) -> None:
    panel = open_widget(page)
    ask(page, "what is omt")
    reply = bot_reply(panel, "what_is_omt")
    first = reply.locator(".omt-quick__button").first
    title = first.inner_text()
    payload = first.get_attribute("data-payload") or ""
    first.click()
    expect(panel.locator(".omt-msg--user .omt-msg__text").last).to_have_text(title)
    nxt = bot_reply(panel, payload.lstrip("/"))
    expect(reply.locator(".omt-quick")).to_have_count(0)  # only the latest answer keeps buttons
    button = nxt.locator(".omt-quick__button").first
    target = (button.get_attribute("data-payload") or "").lstrip("/")
    tab_to(page, button)
    page.keyboard.press("Enter")
    bot_reply(panel, target)


def test_widget_shows_markup_as_text(page: Page) -> None:
    panel = open_widget(page)
    ask(page, XSS)
    mine = panel.locator(".omt-msg--user").last
    expect(mine.locator(".omt-msg__text")).to_have_text(XSS)
    expect(panel.locator(".omt-msg--bot")).to_have_count(2, timeout=REPLY_TIMEOUT)
    assert panel.locator("img").count() == 0
    page.wait_for_timeout(500)
    assert page.watch.dialogs == []  # type: ignore[attr-defined]


def call_links(alert: Locator) -> list[str]:
    return [a.get_attribute("href") or "" for a in alert.locator("a").all()]


def test_widget_emergency_is_an_alert_with_a_call_link(page: Page) -> None:
    panel = open_widget(page)
    ask(page, "I have chest pain")
    alert = panel.get_by_role("alert")
    expect(alert).to_be_visible(timeout=REPLY_TIMEOUT)
    expect(alert).to_have_attribute("data-answer-id", "emergency")
    expect(alert).to_have_class("omt-msg omt-msg--bot omt-msg--safety")
    expect(alert).to_contain_text("911")
    call = alert.locator("a[href='tel:911']")
    expect(call).to_be_visible()
    assert call_links(alert) == ["tel:911"]
    tab_to(page, call)  # the keyboard gets there too
    assert small_targets(page) == []
    shoot(page, "widget-emergency")


def test_widget_crisis_offers_988_to_call_or_text(page: Page) -> None:
    panel = open_widget(page)
    ask(page, "i want to kill myself")
    alert = panel.get_by_role("alert")
    expect(alert).to_be_visible(timeout=REPLY_TIMEOUT)
    expect(alert).to_have_attribute("data-answer-id", "emergency.crisis")
    expect(alert.locator("a[href='tel:988']")).to_be_visible()
    expect(alert.locator("a[href='sms:988']")).to_be_visible()
    assert call_links(alert)[:2] == ["tel:988", "sms:988"], "988 first, by call or text"
    assert small_targets(page) == []
    assert axe_violations(page) == []
    shoot(page, "widget-crisis")


def test_widget_survives_reload_in_session_storage_only(page: Page) -> None:
    panel = open_widget(page)
    ask(page, "does it hurt?")
    bot_reply(panel, "how_it_feels")
    before = storage(page, "omt-widget")
    page.reload()
    panel = page.locator(".omt-panel")
    expect(panel.locator(".omt-msg--bot[data-answer-id='how_it_feels']")).to_be_visible()
    assert storage(page, "omt-widget")["sessionId"] == before["sessionId"]


def test_widget_accessibility(page: Page) -> None:
    panel = open_widget(page)
    ask(page, "does it hurt?")
    bot_reply(panel, "how_it_feels").locator("summary").click()
    ask(page, "I have chest pain")
    expect(panel.get_by_role("alert")).to_be_visible(timeout=REPLY_TIMEOUT)
    assert axe_violations(page) == []
    page.keyboard.press("Escape")
    expect(panel).to_be_hidden()
    expect(page.get_by_role("button", name="Questions about OMT?")).to_be_focused()


# ---- the kiosk --------------------------------------------------------------------


def test_kiosk_topics_answer_without_typing(page: Page) -> None:
    page.goto(CLINIC + "/kiosk")
    expect(page.get_by_role("button", name="Start over")).to_be_visible()
    expect(page.get_by_text("Please ask the front desk")).to_be_visible()
    topic = page.get_by_role("button", name="How it feels")
    tab_to(page, topic)
    page.keyboard.press("Enter")
    reply = bot_reply(page, "how_it_feels")
    expect(reply.locator("summary")).to_contain_text("WebMD")
    expect(page.locator("#start")).to_be_hidden()
    assert small_targets(page) == []
    shoot(page, "kiosk", docs=True)
    assert axe_violations(page) == []


def test_kiosk_warns_then_clears_everything(page: Page) -> None:
    page.goto(CLINIC + "/kiosk?idle=2&warning=3")
    shoot(page, "kiosk-start")
    assert axe_violations(page) == []
    page.get_by_role("button", name="How it feels").click()
    bot_reply(page, "how_it_feels")
    first = storage(page, "omt-kiosk")
    assert first["messages"] and len(first["sessionId"]) == 32

    warning = page.get_by_role("alertdialog")
    expect(warning).to_be_visible(timeout=10_000)
    expect(warning).to_contain_text("Are you still there?")
    still_here = warning.get_by_role("button", name="I'm still here")
    expect(still_here).to_be_focused()
    shoot(page, "kiosk-warning")
    assert axe_violations(page) == []
    still_here.click()
    expect(warning).to_be_hidden()
    expect(page.locator("#log")).to_contain_text("It should not hurt")  # kept: they answered

    expect(warning).to_be_visible(timeout=10_000)  # idle again: this time nobody answers
    expect(warning).to_be_hidden(timeout=10_000)
    expect(page.locator("#start")).to_be_visible()
    expect(page.locator("#log .omt-msg")).to_have_count(0)
    assert "It should not hurt" not in page.content()
    after = storage(page, "omt-kiosk")
    assert after.get("messages") == []
    assert "should not hurt" not in json.dumps(after)
    page.wait_for_function(
        "(old) => { const s = JSON.parse(sessionStorage.getItem('omt-kiosk') || '{}');"
        " return s.sessionId && s.sessionId !== old; }",
        arg=first["sessionId"],
    )
    # The new conversation works, with its own session id.
    page.get_by_role("button", name="What OMT is").click()
    bot_reply(page, "what_is_omt")


def test_kiosk_start_over(page: Page) -> None:
    page.goto(CLINIC + "/kiosk")
    page.get_by_role("button", name="What OMT is").click()
    bot_reply(page, "what_is_omt")
    old = storage(page, "omt-kiosk")["sessionId"]
    page.get_by_role("button", name="Start over").click()
    expect(page.locator("#start")).to_be_visible()
    expect(page.locator("#log .omt-msg")).to_have_count(0)
    assert storage(page, "omt-kiosk")["sessionId"] != old


@pytest.mark.parametrize(
    ("text", "answer_id"), [("I have chest pain", "emergency"), ("i want to kill myself", "emergency.crisis")]
)
def test_kiosk_emergency_sends_the_patient_to_the_front_desk(
    page: Page, knowledge: Knowledge, text: str, answer_id: str
) -> None:
    """No phone at the kiosk: the card leads with the front desk (knowledge/web.yml) and has no call link."""
    page.goto(CLINIC + "/kiosk")
    box = page.get_by_label("Type your question")
    box.fill(text)
    box.press("Enter")
    alert = page.get_by_role("alert")
    expect(alert).to_be_visible(timeout=REPLY_TIMEOUT)
    expect(alert).to_have_attribute("data-answer-id", answer_id)
    note = load_web_texts(knowledge)["kiosk"]["safety"][answer_id]["note"]
    expect(alert.locator(".omt-msg__note").first).to_have_text(note)
    expect(alert).to_contain_text("911")
    expect(alert.locator("a")).to_have_count(0)
    assert "tel:" not in alert.inner_html() and "sms:" not in alert.inner_html()
    assert small_targets(page) == []
    shoot(page, f"kiosk-{answer_id.replace('.', '-')}")


RENDER_CARD_JS = """async ([channel, answerId]) => {
  const { createRenderer } = await import('/static/render.js');
  const node = createRenderer(channel).bot({text: 'Call 911 now.', custom: {answer_id: answerId, kind: 'safety'}});
  return {
    role: node.getAttribute('role'),
    links: Array.from(node.querySelectorAll('a'), (a) => a.getAttribute('href')),
    notes: Array.from(node.querySelectorAll('.omt-msg__note'), (p) => p.textContent),
  };
}"""


@pytest.mark.parametrize("channel", ["widget", "kiosk"])
def test_a_finer_safety_id_gets_its_parents_card(page: Page, knowledge: Knowledge, channel: str) -> None:
    """`emergency.after_treatment` (the screener's warning sign after OMT) has no card of its own: 911's."""
    page.goto(CLINIC + "/kiosk")
    card = load_web_texts(knowledge)[channel]["safety"]["emergency"]
    got = page.evaluate(RENDER_CARD_JS, [channel, "emergency.after_treatment"])
    assert got == {
        "role": "alert",
        "links": [link["href"] for link in card["links"]],
        "notes": [card["note"]] if card["note"] else [],
    }
