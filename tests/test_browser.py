"""The app in a real browser: headless Chromium (Debian's `chromium`) driven by Playwright.

Test 1 sets the sliders, presses Generate and decodes the audio the player holds; test 2 starts the
endless stream, moves the density slider and checks that audio keeps arriving and that the new
condition reaches the engine within the latency bound (a frame position, not a wall time).
Neither skips: without Chromium or Playwright they fail and say what to install.
"""

import io
import shutil
import time
import urllib.request

import numpy as np
import pytest
import soundfile as sf

from musika_tf.conditioning import normalise_condition
from musika_tf.webapp import (STREAM_CHUNK_SECONDS, STREAM_LATENCY_SECONDS, STREAM_LEAD_SECONDS,
                              Generator, build_ui)
from tests.tiny_models import export_tiny, free_port

TIMEOUT_MS = 180_000  # generous: the first request loads and traces the model on a busy 2-core CPU


@pytest.fixture(scope="module")
def browser():
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("Chromium not found: install Debian's `chromium` package (scripts/setup.sh does "
                    "it when run as root: apt-get install chromium)", pytrace=False)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("Playwright is not installed: pip install -r requirements-test.txt", pytrace=False)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=executable, headless=True,
            args=["--autoplay-policy=no-user-gesture-required"])
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(generator, url) of the app serving a tiny density model on a free localhost port."""
    root = tmp_path_factory.mktemp("checkpoints")
    export_tiny(root / "piano", cond="density")
    generator = Generator({"piano": str(root / "piano")})
    ui = build_ui(generator)
    ui.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        yield generator, ui.local_url
    finally:
        ui.close()


@pytest.fixture
def page(browser, served):
    page = browser.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(served[1])
    page.wait_for_selector("#generate")
    yield page
    page.close()


def set_number(page, elem_id: str, value) -> None:
    """Type `value` into the number box of slider/number `elem_id` and commit it."""
    box = page.locator(f"#{elem_id} input[type=number]")
    box.fill(str(value))
    box.press("Enter")
    box.blur()


def test_generate_in_the_browser_gives_non_silent_stereo_of_the_length_asked(page, served):
    generator, _ = served
    set_number(page, "length", 5)
    set_number(page, "seed", 7)
    set_number(page, "density", 6)
    page.click("#generate")
    page.wait_for_selector("#sample-1 audio", state="attached")
    link = page.locator("#sample-1 a[data-testid=download-link]")
    link.wait_for(state="attached")
    audio, rate = sf.read(io.BytesIO(urllib.request.urlopen(link.get_attribute("href")).read()))
    assert rate == 22050 and audio.shape == (5 * rate, 2)
    assert np.all(audio.std(axis=0) > 1e-5), "silent channel"  # random weights: quiet (~1e-3), not silent
    expected = generator.generate("piano", 5, 7, 2.0, density=6).audios[0][1] / 32768.0
    np.testing.assert_allclose(audio, expected, atol=1 / 32768.0)  # the sliders reached the engine
    assert "real time" in page.locator("#summary").inner_text()
    page.wait_for_selector("#spectrogram img")


def test_endless_stream_plays_on_and_a_moved_slider_reaches_the_engine_in_time(page, served):
    generator, _ = served
    if shutil.which("ffmpeg") is None:
        pytest.fail("ffmpeg not found: Gradio's streaming audio output encodes with it; install "
                    "Debian's `ffmpeg` package (scripts/setup.sh does it when run as root)", pytrace=False)
    segments = []
    page.on("response", lambda response: segments.append(response.url)
            if response.url.endswith(".aac") else None)
    set_number(page, "density", 2)
    page.click("#start-stream")
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while not (generator.live and segments):
        assert time.monotonic() < deadline, "the stream never started"
        page.wait_for_timeout(200)
    (live,) = generator.live.values()
    page.wait_for_timeout(3000)
    set_number(page, "density", 9)
    while not live.changes:
        assert time.monotonic() < deadline, "the density change never reached the engine"
        page.wait_for_timeout(200)
    change = live.changes[-1]
    assert change["what"] == "condition"
    assert change["value"] == pytest.approx(float(normalise_condition("density", 9.0)))
    # heard at most one decode unit after the audio handed out so far, plus what is buffered ahead
    latency = (change["applies_at"] - change["handed_out"]) / live.rate
    assert latency + STREAM_LEAD_SECONDS + STREAM_CHUNK_SECONDS <= STREAM_LATENCY_SECONDS <= 6.0
    arrived = len(segments)
    while live.handed_out < change["applies_at"] + 2 * live.rate or len(segments) <= arrived + 2:
        assert time.monotonic() < deadline, "audio stopped arriving after the change"
        page.wait_for_timeout(200)
    playing = page.evaluate("document.querySelector('#live audio').currentTime")
    assert playing > 0, "the browser is not playing the stream"
    page.click("#stop-stream")
    while generator.live:
        assert time.monotonic() < deadline, "Stop did not end the stream"
        page.wait_for_timeout(200)
    assert live.stopped
