"""The latent-space explorer in a real browser: Playwright driving Debian's Chromium, headless, against
`python -m service` on the shipped models. Every check reads the pixels the page painted."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from playwright.sync_api import Browser, Page, sync_playwright

from tests.helpers import ROOT, launch
from training.judge import load_judge

REPOSITORY = ROOT / "models"  # the shipped models: real digits, so "not blank" means something
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
# Each tile of a grid canvas back as 28x28 ink in [0, 1] (ink = 1 - grey): what the page painted, for the judge.
TILES_28 = """([id, cols]) => {
  const c = document.getElementById(id), ctx = c.getContext('2d'), size = c.width / cols, out = [];
  for (let k = 0; k < cols; k++) {
    const d = ctx.getImageData(k * size, 0, size, size).data, img = [];
    for (let r = 0; r < 28; r++) { const row = [];
      for (let q = 0; q < 28; q++) {
        const px = Math.floor((q + 0.5) * size / 28), py = Math.floor((r + 0.5) * size / 28);
        row.push(1 - d[4 * (py * size + px)] / 255);
      }
      img.push(row); }
    out.push(img);
  }
  return out;
}"""
PIXELS = "(id) => Array.from(document.getElementById(id).getContext('2d').getImageData(0, 0, "\
         "document.getElementById(id).width, document.getElementById(id).height).data.filter((_, i) => i % 4 === 0))"


def box(page: Page, selector: str) -> dict[str, float]:
    """Viewport coordinates of an element, scrolled into view first (mouse events need it on screen)."""
    el = page.locator(selector)
    el.scroll_into_view_if_needed()
    b = el.bounding_box()
    assert b is not None, selector
    return b


@contextmanager
def repainted(page: Page, canvas: str) -> Iterator[None]:
    """Wait, after the block, until the page has painted the grid `canvas` once more."""
    count = page.evaluate("id => Number(document.getElementById(id).dataset.painted || 0)", canvas)
    yield
    page.wait_for_function("([id, n]) => Number(document.getElementById(id).dataset.painted || 0) > n",
                           arg=[canvas, count])


def pixels(page: Page, canvas: str) -> np.ndarray:
    return np.asarray(page.evaluate(PIXELS, canvas), dtype=np.float64)


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
    address, proc = launch(["-m", "service"], REPOSITORY, log, VAESERVE_DEFAULT_MODEL="vae-flow-z20")
    yield address
    proc.kill()
    proc.wait()


@pytest.fixture()
def page(browser: Browser, url: str) -> Iterator[Page]:
    page = browser.new_page(viewport={"width": 1100, "height": 1400})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    # Console errors too: a Content-Security-Policy violation or a failed load shows up only there.
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(url + "/")
    page.wait_for_selector("body[data-ready='1']", timeout=30000)
    yield page
    page.close()
    assert not errors, errors


def test_models_are_offered_by_kind(page: Page, url: str) -> None:
    kinds = {m["name"]: m for m in httpx.get(url + "/models").json()["models"]}
    assert page.input_value("#vae-model") == "vae-flow-z20"  # the server's default
    assert kinds[page.input_value("#cvae-model")]["num_classes"] == 10
    assert page.input_value("#z2-model") == "vae-flow-z2"
    vaes = page.eval_on_selector_all("#vae-model option", "os => os.map(o => o.value)")
    assert sorted(vaes) == sorted(n for n, m in kinds.items() if m["generative"] and not m["num_classes"])


def test_sample_grid_follows_the_seed(page: Page) -> None:
    assert_digits(digits(page, "sample-grid", 10), 40)
    first = pixels(page, "sample-grid")
    page.fill("#seed", "12345")
    with repainted(page, "sample-grid"):
        page.click("#sample-btn")
    assert_digits(digits(page, "sample-grid", 10), 40)
    assert np.abs(pixels(page, "sample-grid") - first).mean() > 10  # other digits, not noise
    page.fill("#seed", "0")
    with repainted(page, "sample-grid"):
        page.click("#sample-btn")
    # Same seed, same digits (up to one grey level: float rounding differs with the batch the rows ran in).
    assert np.abs(pixels(page, "sample-grid") - first).max() <= 2


def judged_rows(page: Page, canvas: str, cols: int = 10) -> np.ndarray:
    """The judge CNN's class for each tile the page painted (tiles downsampled to 28x28, ink as brightness)."""
    import torch

    from training.judge import DEFAULT_JUDGE

    w = page.evaluate(f"() => document.getElementById('{canvas}').width")
    img = pixels(page, canvas).reshape(-1, w)
    size = w // cols
    rows = img.shape[0] // size
    tiles = img[: rows * size].reshape(rows, size, cols, size).transpose(0, 2, 1, 3).reshape(-1, size, size)
    small = (255.0 - tiles.reshape(-1, 28, size // 28, 28, size // 28).mean((2, 4))) / 255.0
    judge = torch.jit.load(str(ROOT / DEFAULT_JUDGE)).eval()
    with torch.no_grad():
        return judge(torch.from_numpy(small).float().unsqueeze(1)).argmax(1).numpy().reshape(rows, cols)


def test_conditional_grid_one_class_per_row(page: Page) -> None:
    assert_digits(digits(page, "cvae-grid", 10), 100)
    # Each row is the class it says: the judge reads the painted tiles (a grid whose columns kept their own
    # class whatever the label, as decoding one z under every label does with p(z | y), fails here)
    judged = judged_rows(page, "cvae-grid")
    assert (judged == np.arange(10)[:, None]).mean() >= 0.9, judged
    page.select_option("#cvae-digit", "3")
    with repainted(page, "cvae-grid"):
        page.click("#cvae-btn")
    assert_digits(digits(page, "cvae-grid", 10), 10)


def test_notes_on_the_prior_follow_the_meta(page: Page, url: str) -> None:
    """What the page says about each model's prior comes from /models, not from the page's text."""
    kinds = {m["name"]: m for m in httpx.get(url + "/models").json()["models"]}
    for name in page.eval_on_selector_all("#vae-model option", "os => os.map(o => o.value)"):
        page.select_option("#vae-model", name)
        note = page.text_content("#sample-note") or ""
        flow = kinds[name]["prior"] == "flow"
        assert ("prior(t·ε)" in note) == flow and ("z ~ N(0, t²I)" in note) == (not flow), (name, note)
    cvae = page.input_value("#cvae-model")
    per_class = kinds[cvae]["prior"] == "class-flow"
    assert ("p(z | y)" in (page.text_content("#cvae-note") or "")) == per_class
    assert ("p(z | y)" in (page.text_content("#style-note") or "")) == per_class
    z2 = page.input_value("#z2-model")
    note = page.text_content("#manifold-note") or ""
    assert ("z = prior(ε)" in note) == (kinds[z2]["prior"] == "flow"), note
    assert page.text_content("#cursor-name") == ("ε" if kinds[z2]["prior"] == "flow" else "z")


def test_manifold_and_draggable_cursor(page: Page) -> None:
    assert_digits(digits(page, "manifold-grid", 15), 225)
    area = box(page, "#manifold-stack")
    before = pixels(page, "cursor-digit")
    page.mouse.move(area["x"] + area["width"] / 2, area["y"] + area["height"] / 2)
    page.mouse.down()
    page.mouse.move(area["x"] + 0.1 * area["width"], area["y"] + 0.1 * area["height"], steps=8)
    page.mouse.up()
    page.wait_for_function("() => document.getElementById('cursor-digit').dataset.z && "
                           "JSON.parse(document.getElementById('cursor-digit').dataset.z)[0] < -1")
    z = page.evaluate("() => JSON.parse(document.getElementById('cursor').dataset.z)")
    assert z[0] < -1 and z[1] > 1  # top-left of the grid: z1 low, z2 high, as the figure is laid out
    assert np.abs(pixels(page, "cursor-digit") - before).mean() > 5
    assert_digits(digits(page, "cursor-digit", 1), 1)


@pytest.mark.parametrize("method", ["linear", "slerp"])
def test_interpolation_between_two_samples(page: Page, method: str) -> None:
    grid = box(page, "#sample-grid")
    tile = grid["width"] / 10
    page.mouse.click(grid["x"] + tile / 2, grid["y"] + tile / 2)  # sample 0 -> A
    page.mouse.click(grid["x"] + 5.5 * tile, grid["y"] + 2.5 * tile)  # sample 25 -> B
    page.select_option("#interp-method", method)
    page.fill("#interp-steps", "8")
    with repainted(page, "interp-strip"), page.expect_response("**/interpolate") as resp:
        page.click("#interp-btn")
    assert resp.value.status == 200 and resp.value.request.post_data_json["method"] == method
    ink = digits(page, "interp-strip", 8)
    assert_digits(ink, 8)
    assert_digits(digits(page, "end-a", 1) + digits(page, "end-b", 1), 2)


def draw_seven(page: Page) -> None:
    pad = box(page, "#pad")
    x, y = pad["x"], pad["y"]
    page.mouse.move(x + 70, y + 60)
    page.mouse.down()
    page.mouse.move(x + 210, y + 60, steps=12)
    page.mouse.move(x + 130, y + 240, steps=12)
    page.mouse.up()


def test_drawing_is_reconstructed_encoded_and_restyled(page: Page, tmp_path: Path) -> None:
    with repainted(page, "style-row"):
        draw_seven(page)
    assert_digits(digits(page, "drawn-28", 1), 1)
    assert_digits(digits(page, "recon", 1), 1)
    assert page.text_content("#recon-mse").startswith("MSE per pixel")
    mu = page.evaluate("() => JSON.parse(document.getElementById('latent-bars').dataset.mu)")
    assert len(mu) == 20 and any(abs(v) > 0.1 for v in mu)
    assert page.text_content("#style-label") in list("0123456789")
    assert_digits(digits(page, "style-row", 10), 10)
    # The judge reads the painted row back: each tile the class it was drawn as (POST /restyle), not the drawn 7
    tiles = np.asarray(page.evaluate(TILES_28, ["style-row", 10]), np.float32)
    judge, _ = load_judge(ROOT / "judge" / "mnist-cnn.ts", torch.device("cpu"))
    with torch.no_grad():
        read = judge(torch.from_numpy(tiles)[:, None]).argmax(1).numpy()
    assert (read == np.arange(10)).mean() >= 0.9, read
    # The drawing can be an end of the interpolation (the server encodes it).
    page.click("#use-a")
    grid = box(page, "#sample-grid")
    page.mouse.click(grid["x"] + 10, grid["y"] + 10)  # fills B: A is taken
    with repainted(page, "interp-strip"), page.expect_response("**/interpolate") as resp:
        page.click("#interp-btn")
    assert "image" in resp.value.request.post_data_json["start"]
    assert_digits(digits(page, "interp-strip", 10), 10)
    shot = Path(os.environ.get("VAESERVE_EXPLORER_SCREENSHOT", tmp_path / "explorer.png"))
    page.set_viewport_size({"width": 1100, "height": 2600})
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10000


def test_api_key_is_asked_for_and_used(browser: Browser, tmp_path: Path) -> None:
    address, proc = launch(["-m", "service"], REPOSITORY, tmp_path / "server.log",
                           VAESERVE_DEFAULT_MODEL="vae-flow-z20", VAESERVE_API_KEY="s3cret")
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


def test_api_docs_render_with_no_internet(browser: Browser, url: str) -> None:
    """/docs and /redoc load their scripts from this server: with every other host blocked, Swagger UI still lists
    the inference routes."""
    page = browser.new_page()
    outside: list[str] = []

    def only_here(route) -> None:  # type: ignore[no-untyped-def]
        if route.request.url.startswith(url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_here)
    page.goto(url + "/docs")
    page.wait_for_selector("text=/encode", timeout=30000)
    assert page.locator(".opblock-summary-path").count() >= 5
    page.goto(url + "/redoc")
    page.wait_for_selector("text=/reconstruct", timeout=30000)
    # ReDoc's "powered by" logo points at its CDN: blocked, it costs nothing; no script or style comes from outside
    assert not [u for u in outside if not u.endswith(".svg")], outside
    page.close()
