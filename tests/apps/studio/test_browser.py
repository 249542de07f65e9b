"""The studio in a real browser: Debian's Chromium driven by Playwright (sync API) against a real server.

The tests run in order on one page and build on each other: paint (the live preview shows before the pictures,
timed), inpaint with a brush stroke on the mask, the gallery shows both, PNG info fills the Paint form, a fake
picture is one error line and the studio keeps working. Each step can leave a screenshot for the README:
``NOISEBRUSH_SCREENSHOTS=folder``; ``NOISEBRUSH_BROWSER_TIMINGS=file.json`` keeps the paint timings (always printed).
Skipped where there is no ``/usr/bin/chromium`` or no ``playwright`` (never downloads a browser).
"""
from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

CHROMIUM = "/usr/bin/chromium"
if not Path(CHROMIUM).exists():
    pytest.skip(f"browser tests need Debian's Chromium at {CHROMIUM} (apt-get install chromium)",
                allow_module_level=True)
try:
    from playwright.sync_api import sync_playwright
except ImportError as _e:  # pragma: no cover - depends on the environment
    pytest.skip(f"browser tests need playwright's Python package ({_e})", allow_module_level=True)

from PIL import Image  # noqa: E402

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1280, "height": 900}
LONG = 120_000          # ms: a painting on a busy 2-core machine
PROMPT = "a red sun over purple mountains"
PROMPT2 = "a green tree by a blue lake"

# one object shared by the ordered tests (what an earlier step made, a later one checks)
state: dict = {}


@pytest.fixture(scope="module")
def page(studio_server):
    with sync_playwright() as p:
        try:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        except Exception as e:  # a Chromium that cannot start here (missing libraries …)
            pytest.skip(f"Chromium did not start: {str(e).splitlines()[0]}")
        pg = browser.new_page(viewport=VIEWPORT)
        pg.set_default_timeout(30_000)
        pg.goto(studio_server.url, wait_until="domcontentloaded", timeout=LONG)
        pg.wait_for_selector("#paint-prompt textarea", timeout=LONG)
        try:
            yield pg
        finally:
            browser.close()


def shot(pg, name: str) -> None:
    """A viewport screenshot into $NOISEBRUSH_SCREENSHOTS/name (when set), from the top of the page."""
    folder = os.environ.get("NOISEBRUSH_SCREENSHOTS")
    if not folder:
        return
    Path(folder).mkdir(parents=True, exist_ok=True)
    pg.evaluate("() => window.scrollTo(0, 0)")
    pg.wait_for_timeout(300)  # let images decode
    pg.screenshot(path=str(Path(folder) / name), full_page=False)


def tab(pg, title: str) -> None:
    pg.get_by_role("tab", name=title, exact=True).click()
    pg.wait_for_function("t => [...document.querySelectorAll('button[role=tab]')]"
                         ".some(b => b.textContent.trim() === t && b.getAttribute('aria-selected') === 'true')",
                         arg=title)


def set_number(pg, scope: str, label: str, value) -> None:
    """A slider's number box (gradio labels it "number input for LABEL") inside ``scope``."""
    box = pg.locator(scope).get_by_label(f"number input for {label}", exact=True)
    box.fill(str(value))
    box.press("Enter")
    box.blur()
    assert box.input_value() == str(value)


def srcs(pg, selector: str) -> list[str]:
    return pg.eval_on_selector_all(selector, "els => els.map(e => e.getAttribute('src') || '').filter(Boolean)")


# In the page: when the click on `go` happens and when an <img> with a src not there before first shows in
# `preview` and in `result` (performance.now() in ms, relative to the click). A MutationObserver sees every
# change, even a preview frame that is replaced a moment later.
WATCH = """([go, preview, result]) => {
  const seen = sel => new Set([...document.querySelectorAll(sel + ' img')].map(i => i.getAttribute('src')));
  const before = {preview: seen(preview), result: seen(result)};
  const w = window.__watch = {click: null, preview: null, result: null, order: []};
  document.addEventListener('click', e => {
    if (w.click === null && e.target.closest(go)) w.click = performance.now();
  }, true);
  const look = () => {
    if (w.click === null) return;
    for (const [key, sel] of [['preview', preview], ['result', result]]) {
      if (w[key] !== null) continue;
      const fresh = [...document.querySelectorAll(sel + ' img')]
        .some(i => i.getAttribute('src') && !before[key].has(i.getAttribute('src')));
      if (fresh) { w[key] = performance.now() - w.click; w.order.push(key); }
    }
  };
  const obs = new MutationObserver(look);
  obs.observe(document.body, {subtree: true, childList: true, attributes: true, attributeFilter: ['src']});
  w.stop = () => obs.disconnect();
}"""


def paint_once(pg, prompt: str, n: int) -> dict:
    """Paint ``n`` pictures of ``prompt``; returns the timings (s) seen in the browser and by the server."""
    tab(pg, "Paint")
    pg.fill("#paint-prompt textarea", prompt)
    set_number(pg, "#tab-paint", "pictures", n)
    pg.evaluate(WATCH, ["#paint-go", "#paint-preview", "#paint-result"])
    t = time.perf_counter()
    pg.click("#paint-go")
    pg.wait_for_function("() => window.__watch.preview !== null", timeout=LONG)
    first_py = time.perf_counter() - t
    pg.wait_for_function("() => window.__watch.result !== null", timeout=LONG)
    done_py = time.perf_counter() - t
    w = pg.evaluate("() => { window.__watch.stop(); const {click, preview, result, order} = window.__watch;"
                    " return {click, preview, result, order}; }")
    assert w["order"] == ["preview", "result"], f"the live preview must show before the pictures: {w}"
    pg.wait_for_function("n => document.querySelectorAll('#paint-result img').length >= n", arg=n, timeout=LONG)
    pg.wait_for_function("() => document.querySelector('#paint-info').innerText.includes('painted')", timeout=LONG)
    info = pg.inner_text("#paint-info")
    server_first = None
    if "first preview after " in info:
        server_first = float(info.split("first preview after ")[1].split(" s")[0])
    return {"prompt": prompt, "pictures": n, "first_preview_s": round(w["preview"] / 1000, 3),
            "finished_s": round(w["result"] / 1000, 3), "first_preview_polled_s": round(first_py, 3),
            "finished_polled_s": round(done_py, 3), "server_first_preview_s": server_first}


def test_1_paint_streams_a_preview_before_the_pictures(page, studio_server):
    gallery = studio_server.gallery
    # the first painting of a fresh studio (model loaded on demand, first forward passes), then a second one
    cold = paint_once(page, PROMPT, 2)
    shot(page, "paint.png")
    warm = paint_once(page, PROMPT2, 1)
    painted = sorted(p.name for p in gallery.glob("*.png"))
    state["painted"] = {PROMPT: sorted(gallery.glob("a-red-sun-*.png")), PROMPT2: sorted(gallery.glob("a-green-*.png"))}
    assert len(state["painted"][PROMPT]) == 2 and len(state["painted"][PROMPT2]) == 1, painted
    timings = {"size": 32, "cpus": os.cpu_count(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
               "cold": cold, "warm": warm}
    print(f"\nbrowser timings (32 px, {os.cpu_count()} cpus): "
          f"cold {cold['pictures']} pictures: first preview {cold['first_preview_s']:.2f} s, "
          f"finished {cold['finished_s']:.2f} s; warm {warm['pictures']} picture: first preview "
          f"{warm['first_preview_s']:.2f} s, finished {warm['finished_s']:.2f} s")
    out = os.environ.get("NOISEBRUSH_BROWSER_TIMINGS")
    if out:
        Path(out).write_text(json.dumps(timings, indent=2) + "\n")


def canvas_pixels(pg) -> Image.Image:
    """What the mask editor shows (its top canvas, as rendered)."""
    return Image.open(io.BytesIO(pg.locator("#edit-mask canvas").first.screenshot())).convert("RGB")


def magenta(im: Image.Image) -> int:
    """Pixels of the brush's #ff00ff (blended over the picture: strong red and blue, little green)."""
    a = np.asarray(im, dtype=np.int16)
    return int(((a[..., 0] > 200) & (a[..., 2] > 200) & (a[..., 1] < 90)).sum())


def test_2_inpaint_with_a_brush_stroke(page, studio_server):
    gallery = studio_server.gallery
    tab(page, "Edit")
    source = state["painted"][PROMPT][0]
    page.set_input_files("#edit-upload input[type=file]", str(source))
    # the upload event puts the (enlarged) picture into the mask editor: wait until its canvas shows one
    deadline = time.monotonic() + 60
    while True:
        if np.asarray(canvas_pixels(page)).reshape(-1, 3).std(axis=0).max() > 10:
            break
        assert time.monotonic() < deadline, "the dropped picture never showed in the mask editor"
        page.wait_for_timeout(250)
    page.check("#edit-mode input[value=inpaint]")
    set_number(page, "#tab-edit", "pictures", 1)
    set_number(page, "#tab-edit", "jumps (inpaint/outpaint)", 1)
    set_number(page, "#tab-edit", "steps (0: model's)", 8)  # a short RePaint walk: the test is about the mask
    page.locator("#edit-mask").get_by_role("button", name="Brush", exact=True).click()
    page.wait_for_timeout(200)
    before = magenta(canvas_pixels(page))
    box = page.locator("#edit-mask canvas").first.bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    # a few long moves: each one redraws the (software-rendered) canvas, slow on a busy machine
    page.mouse.move(cx - 80, cy - 40)
    page.mouse.down()
    for k in range(1, 6):
        page.mouse.move(cx - 80 + 32 * k, cy - 40 + 16 * k)
    page.mouse.up()
    page.wait_for_timeout(300)
    drawn = magenta(canvas_pixels(page))
    assert drawn > before + 200, f"the brush stroke did not show on the mask ({before} → {drawn} magenta pixels)"
    shown = set(srcs(page, "#edit-result img"))
    page.click("#edit-go")
    page.wait_for_function("() => document.querySelector('#edit-info').innerText.includes('inpaint:')", timeout=LONG)
    page.wait_for_function("() => document.querySelectorAll('#edit-result img').length >= 1", timeout=LONG)
    assert set(srcs(page, "#edit-result img")) - shown
    inpainted = sorted(gallery.glob("*-inpaint-s*.png"))
    assert len(inpainted) == 1, sorted(p.name for p in gallery.iterdir())
    state["inpainted"] = inpainted[0]
    page.wait_for_timeout(300)
    shot(page, "edit.png")


def test_3_gallery_shows_both_and_the_recipe(page, studio_server):
    tab(page, "Gallery")
    page.click("#gallery-refresh")
    painted, inpainted = state["painted"][PROMPT][0].name, state["inpainted"].name

    def grid_has(name: str) -> bool:
        return any(name in s for s in srcs(page, "#gallery-grid img"))
    deadline = time.monotonic() + 60
    while not (grid_has(painted) and grid_has(inpainted)):
        assert time.monotonic() < deadline, f"the gallery lacks {painted} or {inpainted}: " \
                                            f"{srcs(page, '#gallery-grid img')}"
        page.wait_for_timeout(250)
    where = [i for i, s in enumerate(srcs(page, "#gallery-grid img")) if painted in s][0]
    page.locator("#gallery-grid img").nth(where).click()
    page.wait_for_function("p => { const t = document.querySelector('#gallery-info textarea');"
                           " return t && t.value.includes(p) && t.value.includes('Steps:'); }", arg=PROMPT,
                           timeout=30_000)
    info = page.input_value("#gallery-info textarea")
    assert PROMPT in info and "Steps:" in info, info
    page.wait_for_function("() => { const i = document.querySelector('#gallery-picture img');"
                           " return i && i.complete && i.naturalWidth > 0; }")
    shot(page, "gallery.png")


def test_4_png_info_fills_the_paint_form(page, studio_server):
    # the Paint form holds PROMPT2 from the second painting; the PNG dropped carries PROMPT
    tab(page, "Paint")
    assert page.input_value("#paint-prompt textarea") == PROMPT2
    tab(page, "Gallery")
    page.get_by_role("button", name="PNG info of any picture").click()
    page.wait_for_selector("#pnginfo-drop input[type=file]", state="attached")
    page.set_input_files("#pnginfo-drop input[type=file]", str(state["painted"][PROMPT][0]))
    page.wait_for_function("() => [...document.querySelectorAll('button[role=tab]')].some(b =>"
                           " b.textContent.trim() === 'Paint' && b.getAttribute('aria-selected') === 'true')",
                           timeout=60_000)
    page.wait_for_function("p => document.querySelector('#paint-prompt textarea').value === p", arg=PROMPT,
                           timeout=30_000)
    assert page.locator("#paint-prompt textarea").is_visible()


def test_5_a_fake_picture_is_one_error_line(page, studio_server, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_text("this is a text file, not a PNG\n" * 20)
    tab(page, "Edit")
    upload = page.locator("#edit-upload")
    if upload.locator("input[type=file]").count() == 0:  # a file is shown: clear it first
        upload.get_by_role("button", name="Clear").click()
    page.set_input_files("#edit-upload input[type=file]", str(bad))
    # gradio's toast (top right): "picture: not a picture (…)"
    toast = page.locator("[data-testid=toast-body]").filter(has_text="not a picture").first
    toast.wait_for(state="visible", timeout=30_000)
    text = toast.inner_text()
    assert "picture: not a picture" in text, text
    toast.locator("[data-testid=toast-close]").click()  # it covers the Gallery's refresh button
    toast.wait_for(state="detached")
    assert studio_server.proc.poll() is None, "the studio died on a bad upload"
    # the page still works: an event runs on the server and its answer shows
    tab(page, "Gallery")
    page.click("#gallery-refresh")
    page.wait_for_function("() => /\\d+ pictures?/.test(document.querySelector('#gallery-status').innerText)")
    assert studio_server.proc.poll() is None


def test_6_the_other_tabs_show_their_forms(page):
    tab(page, "Morph")
    page.fill("#morph-prompt textarea", PROMPT)
    page.fill("#morph-to textarea", PROMPT2)
    assert page.locator("#morph-go").is_visible()
    shot(page, "morph.png")
    tab(page, "Animate")
    page.fill("#animate-prompt textarea", "a small red circle sliding left slowly on a blue background")
    assert page.locator("#animate-go").is_visible() and page.locator("#animate-from").is_visible()
    shot(page, "animate.png")
    tab(page, "Sculpt")
    page.fill("#sculpt-prompt textarea", "a tall round table with three legs")
    assert page.locator("#sculpt-go").is_visible() and page.locator("#sculpt-from").is_visible()
    assert page.locator("#sculpt-model3d").is_visible()
    shot(page, "sculpt.png")
    tab(page, "Explain")
    page.fill("#explain-prompt textarea", PROMPT)
    assert page.locator("#explain-go").is_visible()
    shot(page, "explain.png")
    tab(page, "Train")
    assert page.locator("#train-start").is_visible()
    shot(page, "train.png")
