"""The viewer in a real browser: Debian's chromium driven by playwright (software WebGL).

Loads the viewer of a small fitted run, waits for the server-side render to be drawn, checks the
page shows the scene where recon's own render has it (and background elsewhere), drags the
mouse, and checks the server received the new camera and sent a frame rendered for it; then
switches to browser-drawn splats and checks WebGL draws the scene in the same place. The
screenshots are kept in $RECON_TEST_ARTIFACTS (default: .cache/test-artifacts/) for a look.
"""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]
VIEWPORT = {"width": 800, "height": 600}
ARTIFACTS = Path(os.environ.get("RECON_TEST_ARTIFACTS",
                                Path(__file__).resolve().parents[2] / ".cache" / "test-artifacts"))


def _wait_for(condition, what: str, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _screenshot(page) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(page.screenshot())).convert("RGB"))


def _settled_screenshot(page) -> np.ndarray:
    """A screenshot once the page stops changing (viser fades new images in)."""
    shot = _screenshot(page)
    for _ in range(20):
        time.sleep(0.25)
        new = _screenshot(page)
        if np.array_equal(new, shot):
            return new
        shot = new
    return shot


def _compare_with_render(viewer, loop, shot: np.ndarray) -> tuple[float, float, float]:
    """(median darkness inside the scene, outside it, median |page - recon render| inside), with
    darkness = 765 - R - G - B (the background is white) and the scene = recon's alpha > 0.8 for
    the camera of the frame the server last sent."""
    camera = loop.last_frame.pose.to_camera(shot.shape[1], shot.shape[0])
    expected = viewer.render(camera, "rgb").astype(int)
    alpha = viewer.render(camera, "alpha")[..., 0] / 255.0
    scene, empty = alpha > 0.8, alpha < 0.02
    assert scene.mean() > 0.02 and empty.mean() > 0.2  # the view frames the blobs
    darkness = 765 - shot.astype(int).sum(-1)
    difference = np.abs(shot.astype(int) - expected).sum(-1)
    return (float(np.median(darkness[scene])), float(np.median(darkness[empty])),
            float(np.median(difference[scene])))


def test_viewer_draws_and_follows_the_mouse(fitted_run):
    if not CHROMIUM.exists():
        pytest.skip(f"Debian chromium is not installed at {CHROMIUM}; `make setup` installs it "
                    "(apt-get install chromium).")
    from playwright.sync_api import sync_playwright

    from recon.viewer.app import DRAW_BROWSER, open_viewer

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    viewer = open_viewer(fitted_run, port=0, quiet=True)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport=VIEWPORT)
                page.goto(viewer.url)
                _wait_for(lambda: viewer.client_loops(), "the browser to connect")
                loop = viewer.client_loops()[0]
                _wait_for(lambda: loop.last_frame is not None and loop.last_frame.kind == "final",
                          "the first full-resolution frame")
                assert (loop.last_frame.width, loop.last_frame.height) == (800, 600)
                page.locator("canvas").first.wait_for()
                before = _settled_screenshot(page)
                Image.fromarray(before).save(ARTIFACTS / "viewer_browser.png")
                inside, outside, mismatch = _compare_with_render(viewer, loop, before)
                # The blobs are dark on white; the background stays white. The page shows recon's
                # render (JPEG and the browser's colour handling differ by ~45 of 765 here;
                # a frame for another camera differs by 200+).
                assert inside > 100 and outside < 20, (inside, outside)
                assert mismatch < 100, mismatch

                frames, updates = loop.frames_sent, loop.camera_updates
                old_pose = loop.last_frame.pose
                x, y = VIEWPORT["width"] / 2, VIEWPORT["height"] / 2
                page.mouse.move(x, y)
                page.mouse.down()
                for i in range(1, 11):
                    page.mouse.move(x + 20 * i, y, steps=2)
                page.mouse.up()
                _wait_for(lambda: loop.camera_updates > updates, "the new camera on the server")
                moved = float(np.linalg.norm(np.asarray(loop.client.camera.position)
                                             - old_pose.position))
                assert moved > 0.1, moved
                def new_final_frame() -> bool:
                    frame = loop.last_frame
                    return (loop.frames_sent > frames and frame.kind == "final"
                            and np.allclose(frame.pose.position, loop.client.camera.position))

                _wait_for(new_final_frame, "a frame rendered for the new camera")
                after = _settled_screenshot(page)
                Image.fromarray(after).save(ARTIFACTS / "viewer_browser_after_drag.png")
                inside, outside, mismatch = _compare_with_render(viewer, loop, after)
                assert inside > 100 and outside < 20 and mismatch < 100, (inside, outside, mismatch)
                assert np.abs(after.astype(int) - before.astype(int)).sum(-1).mean() > 5

                # Browser-drawn splats (WebGL): the server's image goes, the blobs stay.
                viewer.draw_mode.value = DRAW_BROWSER
                _wait_for(lambda: loop.cleared, "the server-side image to be removed")
                splats = _settled_screenshot(page)
                Image.fromarray(splats).save(ARTIFACTS / "viewer_browser_splats.png")
                inside, outside, _ = _compare_with_render(viewer, loop, splats)
                assert inside > 100 and outside < 20, (inside, outside)
                # ...drawn differently (DC colour only, WebGL blending): ~2% of the pixels
                # change by more than 30 of 765 here; an unchanged page would give 0.
                changed = np.abs(splats.astype(int) - after.astype(int)).sum(-1) > 30
                assert changed.mean() > 0.005, changed.mean()
            finally:
                browser.close()
    finally:
        viewer.close()
