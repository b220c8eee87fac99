"""The latent-space explorer in a real browser: Playwright driving Debian's Chromium, headless, against
`python -m service` on the shipped models. Every check reads the pixels the page painted."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.service.conftest import ROOT, launch

CHROMIUM = os.environ.get("VAESERVE_CHROMIUM", "/usr/bin/chromium")
# Headless as root in a sandboxed machine with no network: without the background-networking flags
# Chromium keeps trying to reach Google's hosts.
ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

# Ink per tile of a grid canvas (dark ink on white paper): the fraction of pixels darker than mid-grey.
TILE_INK = """([id, cols]) => {
  const c = document.getElementById(id), ctx = c.getContext('2d');
  const size = c.width / cols, rows = Math.round(c.height / size), out = [];
  for (let r = 0; r < rows; r++) for (let k = 0; k < cols; k++) {
    const d = ctx.getImageData(k * size, r * size, size, size).data;
    let ink = 0;
    for (let i = 0; i < d.length; i += 4) if (d[i] < 128) ink++;
    out.push(ink / (d.length / 4));
  }
  return out;
}"""
PIXELS = "(id) => Array.from(document.getElementById(id).getContext('2d').getImageData(0, 0, "\
         "document.getElementById(id).width, document.getElementById(id).height).data.filter((_, i) => i % 4 === 0))"


def digits(page: Page, canvas: str, cols: int) -> list[float]:
    return page.evaluate(TILE_INK, [canvas, cols])


def assert_digits(ink: list[float], n: int) -> None:
    """n tiles, each with some ink and far from solid: a digit, not a blank or a blot."""
    assert len(ink) == n, ink
    blank = [i for i, v in enumerate(ink) if not 0.02 <= v <= 0.6]
    assert not blank, f"tiles without a digit-like amount of ink: {[(i, round(ink[i], 3)) for i in blank]}"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not shutil.which(CHROMIUM):
        pytest.fail(f"no Chromium at {CHROMIUM}: apt-get install chromium (.ci/run does), or set VAESERVE_CHROMIUM")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("explorer") / "server.log"
    address, proc = launch(["-m", "service"], ROOT / "models", log, VAESERVE_DEFAULT_MODEL="vae-z20")
    yield address
    proc.kill()
    proc.wait()


@pytest.fixture()
def page(browser: Browser, url: str) -> Iterator[Page]:
    page = browser.new_page(viewport={"width": 1100, "height": 1400})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url + "/")
    page.wait_for_selector("body[data-ready='1']", timeout=30000)
    yield page
    page.close()
    assert not errors, errors


def test_models_are_offered_by_kind(page: Page) -> None:
    assert page.input_value("#vae-model") == "vae-z20"  # the server's default
    assert page.input_value("#cvae-model") == "cvae-z20"
    assert page.input_value("#z2-model") == "vae-z2"
    vaes = page.eval_on_selector_all("#vae-model option", "os => os.map(o => o.value)")
    assert "vae-z5" in vaes and "deep-ae-z20" not in vaes and "cvae-z20" not in vaes


def test_sample_grid_follows_the_seed(page: Page) -> None:
    assert_digits(digits(page, "sample-grid", 10), 40)
    first = page.evaluate(PIXELS, "sample-grid")
    page.fill("#seed", "12345")
    with page.expect_response("**/sample"):
        page.click("#sample-btn")
    assert_digits(digits(page, "sample-grid", 10), 40)
    assert page.evaluate(PIXELS, "sample-grid") != first
    page.fill("#seed", "0")
    with page.expect_response("**/sample"):
        page.click("#sample-btn")
    assert page.evaluate(PIXELS, "sample-grid") == first  # same seed, same digits


def test_conditional_grid_one_class_per_row(page: Page) -> None:
    assert_digits(digits(page, "cvae-grid", 10), 100)
    page.select_option("#cvae-digit", "3")
    with page.expect_response("**/decode"):
        page.click("#cvae-btn")
    assert_digits(digits(page, "cvae-grid", 10), 10)


def test_manifold_and_draggable_cursor(page: Page) -> None:
    assert_digits(digits(page, "manifold-grid", 15), 225)
    box = page.locator("#manifold-stack").bounding_box()
    assert box is not None
    before = page.evaluate(PIXELS, "cursor-digit")
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + 0.1 * box["width"], box["y"] + 0.1 * box["height"], steps=8)
    page.mouse.up()
    page.wait_for_function("() => document.getElementById('cursor-digit').dataset.z && "
                           "JSON.parse(document.getElementById('cursor-digit').dataset.z)[0] < -1")
    z = page.evaluate("() => JSON.parse(document.getElementById('cursor').dataset.z)")
    assert z[0] < -1 and z[1] > 1  # top-left of the grid: z1 low, z2 high, as the figure is laid out
    assert page.evaluate(PIXELS, "cursor-digit") != before
    assert_digits(digits(page, "cursor-digit", 1), 1)


@pytest.mark.parametrize("method", ["linear", "slerp"])
def test_interpolation_between_two_samples(page: Page, method: str) -> None:
    grid = page.locator("#sample-grid").bounding_box()
    assert grid is not None
    tile = grid["width"] / 10
    page.mouse.click(grid["x"] + tile / 2, grid["y"] + tile / 2)  # sample 0 -> A
    page.mouse.click(grid["x"] + 5.5 * tile, grid["y"] + 2.5 * tile)  # sample 25 -> B
    page.select_option("#interp-method", method)
    page.fill("#interp-steps", "8")
    with page.expect_response("**/interpolate") as resp:
        page.click("#interp-btn")
    assert resp.value.status == 200 and resp.value.request.post_data_json["method"] == method
    ink = digits(page, "interp-strip", 8)
    assert_digits(ink, 8)
    assert_digits(digits(page, "end-a", 1) + digits(page, "end-b", 1), 2)


def draw_seven(page: Page) -> None:
    box = page.locator("#pad").bounding_box()
    assert box is not None
    x, y = box["x"], box["y"]
    page.mouse.move(x + 70, y + 60)
    page.mouse.down()
    page.mouse.move(x + 210, y + 60, steps=12)
    page.mouse.move(x + 130, y + 240, steps=12)
    page.mouse.up()


def test_drawing_is_reconstructed_encoded_and_restyled(page: Page, tmp_path: Path) -> None:
    with page.expect_response(lambda r: "/decode" in r.url and "cvae" in (r.request.post_data or "")):
        draw_seven(page)
    assert_digits(digits(page, "drawn-28", 1), 1)
    assert_digits(digits(page, "recon", 1), 1)
    assert page.text_content("#recon-mse").startswith("MSE per pixel")
    mu = page.evaluate("() => JSON.parse(document.getElementById('latent-bars').dataset.mu)")
    assert len(mu) == 20 and any(abs(v) > 0.1 for v in mu)
    assert page.text_content("#style-label") in list("0123456789")
    assert_digits(digits(page, "style-row", 10), 10)
    # The drawing can be an end of the interpolation (the server encodes it).
    page.click("#use-a")
    grid = page.locator("#sample-grid").bounding_box()
    assert grid is not None
    page.mouse.click(grid["x"] + 10, grid["y"] + 10)  # fills B: A is taken
    with page.expect_response("**/interpolate") as resp:
        page.click("#interp-btn")
    assert "image" in resp.value.request.post_data_json["start"]
    assert_digits(digits(page, "interp-strip", 10), 10)
    shot = Path(os.environ.get("VAESERVE_EXPLORER_SCREENSHOT", tmp_path / "explorer.png"))
    page.set_viewport_size({"width": 1100, "height": 2600})
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10000


def test_api_key_is_asked_for_and_used(browser: Browser, tmp_path: Path) -> None:
    address, proc = launch(["-m", "service"], ROOT / "models", tmp_path / "server.log",
                           VAESERVE_DEFAULT_MODEL="vae-z20", VAESERVE_API_KEY="s3cret")
    try:
        page = browser.new_page()
        page.goto(address + "/")  # the page itself needs no key; the calls it makes do
        page.wait_for_selector("#keybox:not([hidden])")
        page.fill("#apikey", "s3cret")
        page.click("#keysave")
        page.wait_for_selector("body[data-ready='1']", timeout=30000)
        assert_digits(digits(page, "sample-grid", 10), 40)
        page.close()
    finally:
        proc.kill()
        proc.wait()
