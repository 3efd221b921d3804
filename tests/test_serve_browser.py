"""The page at `/` in Debian's Chromium, headless, driven by Playwright: the token from
``#token=``, a task typed and sent with Enter, the steps and the answer drawn live, a failed
step shown plainly, the finished turn drawn again from the journal after a reload.

This test fails (it is not skipped) when Chromium or Playwright is missing: `.ci/run`
installs both (apt-get install chromium; pip install playwright).
"""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import expect, sync_playwright

from agent.models.scripted import ScriptedModel
from tests.serve_support import TOKEN, live, make_state

CHROMIUM = Path("/usr/bin/chromium")
FAILING = 'ToolCall::Wat(```wat\n(resv (str.to_i32 "not a number"))\n```)'
UPPER = 'ToolCall::Catalog("upper", "hello web")'
ANSWER = 'ToolCall::Response("""HELLO WEB""")'


def test_the_page_runs_a_task_and_draws_its_steps(tmp_path: Path) -> None:
    assert CHROMIUM.is_file(), f"{CHROMIUM} is missing: apt-get install -y chromium"
    state = make_state(ScriptedModel([FAILING, UPPER, ANSWER]))
    with live(state) as url, sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True,
            args=["--no-sandbox", "--disable-background-networking"],
        )  # fmt: skip
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"{url}/#token={TOKEN}")
            assert "token=" not in page.url  # taken out of the address bar
            expect(page.locator("#token-box")).to_be_hidden()
            box = page.locator("#task")
            box.click()
            box.type("Upper-case")
            box.press("Shift+Enter")
            box.type("'hello web'")
            assert box.input_value() == "Upper-case\n'hello web'"
            box.press("Enter")
            answer = page.locator(".answer")
            expect(answer).to_have_text("HELLO WEB", timeout=20_000)
            expect(page.locator(".turn .badge")).to_have_text("answered")
            expect(page.locator(".step.failed .result-line.failed").first).to_contain_text("FAILED")
            expect(page.locator(".step.ok .result-line.ok")).to_contain_text("ok")
            expect(page.locator(".step.ok pre.results")).to_have_text("HELLO WEB")
            expect(page.locator(".step .call").nth(1)).to_have_text('upper("hello web")')
            expect(page.locator(".turn .task")).to_have_text("Upper-case\n'hello web'")
            expect(page.locator("#sessions li")).to_have_count(1)
            page.screenshot(path=str(tmp_path / "serve-page.png"), full_page=True)
            page.reload()  # the finished turn, drawn again from the journal
            expect(page.locator(".answer")).to_have_text("HELLO WEB", timeout=10_000)
            expect(page.locator(".step")).to_have_count(3)  # the answer is step 3
            assert errors == []
        finally:
            browser.close()
    assert (tmp_path / "serve-page.png").stat().st_size > 1000


def test_the_page_asks_for_a_token_when_it_has_none(tmp_path: Path) -> None:
    assert CHROMIUM.is_file(), f"{CHROMIUM} is missing: apt-get install -y chromium"
    state = make_state(ScriptedModel([]))
    with live(state) as url, sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True,
            args=["--no-sandbox", "--disable-background-networking"],
        )  # fmt: skip
        try:
            page = browser.new_page()
            page.goto(f"{url}/")
            expect(page.locator("#token-box")).to_be_visible()
            page.fill("#token-input", "wrong-token-0000000000")
            page.click("#token-form button")
            expect(page.locator("#status")).to_contain_text("refused")
            page.fill("#token-input", TOKEN)
            page.click("#token-form button")
            expect(page.locator("#token-box")).to_be_hidden()
            expect(page.locator("#session-title")).to_have_text("session web")
        finally:
            browser.close()
