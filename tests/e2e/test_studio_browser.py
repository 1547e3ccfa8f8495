"""Cadenza Studio in a real browser: Debian's Chromium driven by Playwright (``executable_path``; its own browser
download does not work here), every request to another origin aborted and recorded. A 2-bar groove from the drums
form completes in the job list, its drum grid is drawn (pixels, not just an element), its audio plays (muted
autoplay: ``currentTime`` advances); a WAV uploaded to separation gives a mixer with both stems; an API
validation error shows next to its field; with auth on, a missing key is explained; the key is kept for the tab
(``sessionStorage``) unless "remember" is ticked (``localStorage``). Every flow runs under the page's
Content-Security-Policy without a single violation. With ``CADENZA_SCREENSHOTS=1`` (``make screenshots``) each
panel is saved under ``docs/img/``."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))

from conftest import Server, chromium_path, record_csp_violations, start_server  # noqa: E402

playwright_api = pytest.importorskip("playwright.sync_api")
IMAGES = Path(__file__).resolve().parents[2] / "docs" / "img"
SCREENSHOTS = os.environ.get("CADENZA_SCREENSHOTS") == "1"


@pytest.fixture(scope="module")
def browser() -> Iterator:
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=chromium_path(),
            args=["--no-sandbox", "--disable-dev-shm-usage", "--autoplay-policy=no-user-gesture-required"],
        )
        yield browser
        browser.close()


def _page(browser, server: Server, foreign: list[str], violations: list[str]):
    """A ready Studio page of ``browser`` (or of a browser context): requests to other origins are aborted and
    added to ``foreign``, Content-Security-Policy violations added to ``violations``."""
    page = browser.new_page()
    page.set_viewport_size({"width": 1280, "height": 900})
    page.set_default_timeout(120_000)
    record_csp_violations(page, violations)

    def route(route) -> None:
        url = route.request.url
        if url.startswith(server.base_url) or url.startswith(("blob:", "data:")):
            route.continue_()
        else:
            foreign.append(url)
            route.abort()

    page.route("**/*", route)
    page.goto(server.base_url + "/")
    page.wait_for_selector("body[data-ready='1']")
    return page


def _wait_until(element, predicate: str, timeout_s: float = 120) -> None:
    """Wait until the JavaScript function ``predicate`` is true of the ``element`` locator's element (checked every
    50 ms). Not ``page.wait_for_function``: it runs its predicate through ``eval`` on each check, which the page's
    Content-Security-Policy refuses (no 'unsafe-eval'); here the function is compiled once, by the evaluation."""
    element.evaluate(
        f"""async (node) => {{
          const predicate = {predicate};
          const deadline = performance.now() + {timeout_s * 1000};
          while (!predicate(node)) {{
            if (performance.now() > deadline) throw new Error({json.dumps(f"timed out: {predicate}")});
            await new Promise((resolve) => setTimeout(resolve, 50));
          }}
        }}"""
    )


def _shot(page, name: str) -> None:
    if SCREENSHOTS:
        IMAGES.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(IMAGES / f"studio-{name}.png"), full_page=True)


def test_make_hear_see_and_separate_offline(browser, server: Server, tmp_path: Path) -> None:
    foreign: list[str] = []
    violations: list[str] = []
    page = _page(browser, server, foreign, violations)
    headers = page.request.get(server.base_url + "/").headers
    assert "'unsafe-inline'" not in headers["content-security-policy"]  # the policy these flows run under
    tabs = page.locator("#engine-tabs button").all_inner_texts()
    assert {"drums", "separation", "melody", "track"} <= set(tabs)  # every engine of the server, from its OpenAPI

    # a validation error from the API shows next to its field
    page.fill("#f-drums-bars", "999")
    page.click("form[data-kind=drums] button[type=submit]")
    page.wait_for_selector("#err-drums-bars:not(:empty)")
    assert "32" in page.inner_text("#err-drums-bars")

    # a 2-bar J Dilla groove with an audio preview
    page.select_option("#f-drums-producer_style", "J Dilla")
    assert "BPM" in page.inner_text("[data-field=producer_style] .help")  # the style's description and tempo range
    page.fill("#f-drums-bars", "2")
    page.check("form[data-kind=drums] input[name=formats][value=wav]")
    page.click("form[data-kind=drums] button[type=submit]")
    assert page.inner_text("#err-drums-bars") == ""
    job = page.locator("li.job[data-kind=drums][data-status=completed]").first
    job.wait_for()
    roll = job.locator("canvas.roll")
    roll.wait_for()
    assert int(roll.get_attribute("data-notes")) > 0 and roll.get_attribute("data-mode") == "drums"
    painted = roll.evaluate(
        "c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        " let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i + 3] > 0 && d[i + 2] > d[i] + 60) n++; return n; }"
    )
    assert painted > 500  # the hits are drawn in the note colour (blue), not just grid lines and labels
    audio = job.locator(".wave audio")
    audio.wait_for(state="attached")
    audio.evaluate("a => { a.muted = true; return a.play(); }")
    _wait_until(audio, "a => a.currentTime > 0.2")
    _wait_until(job.locator(".playhead"), "p => parseFloat(p.style.left) > 0")  # it follows the audio
    assert job.locator(".downloads button").count() >= 2 and job.locator(".downloads button.zip").count() == 1
    assert "j-dilla_90bpm_2bars" in job.locator(".downloads").inner_text()  # the descriptive names
    with page.expect_download() as fetched:  # the MIDI file, saved under its descriptive name
        job.locator(".downloads button", has_text=".mid").first.click()
    saved = fetched.value
    assert saved.suggested_filename.startswith("j-dilla_90bpm_2bars") and saved.suggested_filename.endswith(".mid")
    assert Path(saved.path()).read_bytes().startswith(b"MThd")
    _shot(page, "drums")

    # separation: a short WAV uploaded (progress bar) and its stems in the mixer
    song = tmp_path / "song.wav"
    t = np.arange(int(3 * 22050)) / 22050
    tone = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.2 * (np.random.default_rng(1).random(t.size) - 0.5) * (t % 0.5 < 0.05)
    sf.write(song, np.stack([tone, tone], axis=1).astype(np.float32), 22050)
    page.click("#tab-separation")
    page.set_input_files("#in-separation-file", str(song))
    page.click("form[data-kind=separation] button[type=submit]")
    separated = page.locator("li.job[data-kind=separation][data-status=completed]").first
    separated.wait_for()
    mixer = separated.locator(".mixer")
    mixer.wait_for()
    assert int(mixer.get_attribute("data-stems")) >= 2
    stems = separated.locator(".mixer .stem")
    assert stems.count() >= 2
    stems.first.locator("input[aria-label^='Solo']").check()
    _shot(page, "separation")

    # a melody: its MIDI as a piano roll (not a drum grid)
    page.click("#tab-melody")
    profiles = page.eval_on_selector_all("#f-melody-profile option", "os => os.map(o => o.value)")  # the presets
    assert "conservative" in profiles and page.locator("#f-melody-profile").input_value() == "balanced"
    page.click("form[data-kind=melody] button[type=submit]")
    melody = page.locator("li.job[data-kind=melody][data-status=completed]").first
    melody.wait_for()
    melody_roll = melody.locator("canvas.roll").first
    melody_roll.wait_for()
    assert melody_roll.get_attribute("data-mode") == "piano" and int(melody_roll.get_attribute("data-notes")) > 8
    _shot(page, "melody")

    # the track panel interprets its prompt before submitting
    page.click("#tab-track")
    genres = page.eval_on_selector_all("#f-track-genre option", "os => os.map(o => o.value)")
    assert "lo-fi hip hop" in genres and genres[0] == ""  # the genres catalogue; none: from the prompt
    page.fill("#f-track-prompt", "lo-fi hip hop, 84 bpm, A minor, 20 s")
    page.click("text=Interpret the prompt")
    page.wait_for_selector("form[data-kind=track] dl.plan:not([hidden])")
    assert "84" in page.inner_text("form[data-kind=track] dl.plan")
    page.click("form[data-kind=track] button[type=submit]")
    track = page.locator("li.job[data-kind=track][data-status=completed]").first
    track.wait_for()
    track.locator(".mixer").wait_for()
    assert int(track.locator(".mixer").get_attribute("data-stems")) >= 3  # a mixer of its stems
    lanes = track.locator("canvas.roll").first
    lanes.wait_for()
    assert "part(s)" in lanes.get_attribute("aria-label") and int(lanes.get_attribute("data-notes")) > 20
    assert track.locator(".wave audio").count() >= 1  # the mastered mix
    _shot(page, "track")
    assert foreign == []  # nothing was asked of another origin
    assert violations == []  # waveforms (wavesurfer's shadow-root style), piano rolls, mixers: all within the CSP
    page.close()


def test_dark_theme_follows_the_system(browser, server: Server) -> None:
    colours, violations = [], []
    for scheme in ("light", "dark"):
        page = browser.new_page(color_scheme=scheme)
        record_csp_violations(page, violations)
        page.goto(server.base_url + "/")
        colours.append(page.evaluate("getComputedStyle(document.body).backgroundColor"))
        page.close()
    assert colours[0] != colours[1]
    assert violations == []


def test_a_missing_key_is_explained(browser, tmp_path: Path) -> None:
    server = start_server(tmp_path, auth_enabled="true", admin_key="studio-admin-key-0123456789")
    try:
        foreign: list[str] = []
        violations: list[str] = []
        page = _page(browser, server, foreign, violations)
        page.click("form[data-kind=drums] button[type=submit]")
        page.locator("#key-help", has_text="API key").wait_for()
        assert "requires an API key" in page.inner_text("#key-help")
        page.fill("#api-key", "studio-admin-key-0123456789")
        page.click("#key-form button")
        page.click("form[data-kind=drums] button[type=submit]")
        page.locator("li.job[data-kind=drums]").first.wait_for()
        assert foreign == [] and violations == []
        page.close()
    finally:
        server.stop()


def test_phone_width_keeps_one_column(browser, server: Server) -> None:
    foreign: list[str] = []
    violations: list[str] = []
    page = _page(browser, server, foreign, violations)
    page.set_viewport_size({"width": 390, "height": 844})
    create = page.locator("section.create").bounding_box()
    jobs = page.locator("section.jobs").bounding_box()
    assert jobs["y"] >= create["y"] + create["height"] - 1  # stacked, not side by side
    assert page.evaluate("document.documentElement.scrollWidth") <= 400  # no sideways scrolling
    assert violations == []
    page.close()


STORED_KEY = "[sessionStorage.getItem('cadenza.apiKey'), localStorage.getItem('cadenza.apiKey')]"


def test_the_key_stays_in_the_tab_unless_remembered(browser, tmp_path: Path) -> None:
    server = start_server(tmp_path, workers="0")  # no jobs to list: three tabs stay light
    context = browser.new_context()  # one browser profile: its tabs share localStorage, each has its sessionStorage
    foreign: list[str] = []
    violations: list[str] = []
    try:
        page = _page(context, server, foreign, violations)
        assert not page.is_checked("#remember-key")
        page.fill("#api-key", "key-of-this-tab")
        page.click("#key-form button")
        assert page.evaluate(STORED_KEY) == ["key-of-this-tab", None]  # sessionStorage only
        assert "this tab" in page.inner_text("#key-help")
        other = _page(context, server, foreign, violations)
        assert other.input_value("#api-key") == "" and not other.is_checked("#remember-key")  # another tab: no key

        page.check("#remember-key")  # moves the saved key to localStorage
        assert page.evaluate(STORED_KEY) == [None, "key-of-this-tab"]
        other.reload()
        other.wait_for_selector("body[data-ready='1']")
        assert other.input_value("#api-key") == "key-of-this-tab" and other.is_checked("#remember-key")

        other.uncheck("#remember-key")  # forgotten by the browser, still used by this tab
        assert other.evaluate(STORED_KEY) == ["key-of-this-tab", None]
        third = _page(context, server, foreign, violations)
        assert third.input_value("#api-key") == ""
        assert foreign == [] and violations == []
    finally:
        context.close()
        server.stop()
