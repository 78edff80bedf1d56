"""The Gradio demo (`app.py`): its functions in-process, then the page in a real headless Chromium.

The browser test starts `python app.py` with the shipped model on 127.0.0.1, uploads a real photo (a 64x64 crop of
scikit-image's astronaut), presses the button, waits for the result and downloads it from the page's link. It needs
Debian's `chromium` and `chromium-driver` (`.ci/run` installs them) and skips, saying so, where they are missing.
Set SR3_DEMO_SCREENSHOT=path to keep a copy of the page's screenshot (docs/demo_screenshot.png is made so).
"""

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from skimage import data as skimage_data

from sr3_diffusers import SHIPPED_MODEL, SR3Pipeline
from tests.testing_utils import free_port, random_tiny_predictor


gr = pytest.importorskip("gradio")

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
import app  # noqa: E402  (the demo, for its functions)


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "astronaut.png"
    PIL.Image.fromarray(skimage_data.astronaut()[90:154, 190:254]).save(path)
    return path


def pixels(image):
    return np.asarray(image.convert("RGB"), dtype=np.int16)


# ----------------------------------------------------------------------------------------------------------------------
# In-process


def test_upscale_returns_bicubic_and_the_pipelines_output_and_a_png(tiny_pipeline, photo):
    (before, after), download = app.upscale(tiny_pipeline, str(photo), 2, 1.0, False, 3, 0, progress=lambda *a, **k: None)
    expected = tiny_pipeline(PIL.Image.open(photo), num_inference_steps=2, generator=torch.manual_seed(3))
    assert after.size == before.size == (256, 256)
    assert np.array_equal(pixels(after), pixels(expected.images[0]))
    assert np.array_equal(pixels(before), pixels(app.bicubic(PIL.Image.open(photo), 4)))
    assert Path(download).name == "astronaut_x4.png"
    assert np.array_equal(pixels(PIL.Image.open(download)), pixels(after))


def test_strength_zero_gives_the_faithful_predictors_image(tiny_pipeline, photo):
    """The slider's 0: no sampling, the model's most faithful output (here its faithful predictor's image)."""
    faithful = random_tiny_predictor(seed=2)
    tiny_pipeline.register_modules(faithful_predictor=faithful)
    (_, after), _ = app.upscale(tiny_pipeline, str(photo), 2, 0.0, False, 3, 0, progress=lambda *a, **k: None)
    with torch.no_grad():
        low_res = torch.from_numpy(pixels(PIL.Image.open(photo))).permute(2, 0, 1)[None].float() / 255
        expected = (faithful(low_res * 2 - 1).sample.clamp(-1, 1) + 1) / 2
    assert np.abs(pixels(after) - np.round(expected[0].permute(1, 2, 0).numpy() * 255)).max() <= 1


def test_tiled_upscale_has_the_upload_size_times_the_scale(tiny_pipeline, photo):
    (_, after), _ = app.upscale(tiny_pipeline, str(photo), 2, 1.0, False, 0, 64, progress=lambda *a, **k: None)
    assert after.size == (256, 256)


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "Upload an image first"),
        (b"not an image", "bad.png is not an image Pillow can read"),
        ("too_large", "bad.png is 600 x 20 pixels; this demo takes at most 512 pixels a side"),
    ],
)
def test_bad_uploads_are_one_clear_message(tiny_pipeline, tmp_path, content, message):
    path = None
    if content is not None:
        path = tmp_path / "bad.png"
        if content == "too_large":
            PIL.Image.new("RGB", (600, 20)).save(path)
        else:
            path.write_bytes(content)
    with pytest.raises(gr.Error, match=message):
        app.upscale(tiny_pipeline, path and str(path), 2, 1.0, False, 0, 0, progress=lambda *a, **k: None)


def test_a_tile_size_the_unet_cannot_take_is_a_message_not_a_traceback(tiny_pipeline, photo):
    with pytest.raises(gr.Error, match="`tile_size` must be a positive multiple of"):
        app.upscale(tiny_pipeline, str(photo), 2, 1.0, False, 0, 7, progress=lambda *a, **k: None)


# ----------------------------------------------------------------------------------------------------------------------
# In Chromium

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


@pytest.fixture
def server(tmp_path):
    """`python app.py` (the shipped model) on a free port; yields its URL once it has printed it."""
    port = free_port()
    env = dict(os.environ, HF_HUB_OFFLINE="1", GRADIO_TEMP_DIR=str(tmp_path / "gradio"), PYTHONUNBUFFERED="1")
    log = open(tmp_path / "app.log", "w+")
    process = subprocess.Popen(
        [sys.executable, str(REPO_ROOT / "app.py"), "--port", str(port), "--device", "cpu"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while url not in Path(log.name).read_text():
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"app.py did not start:\n{Path(log.name).read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


@pytest.fixture
def browser(tmp_path):
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip("needs Chromium and its driver: `apt-get install chromium chromium-driver` (.ci/run does)")
    webdriver = pytest.importorskip("selenium.webdriver")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # The network is closed: no background requests, updates, sync or QUIC; a fresh profile each time.
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1400,1200"):  # fmt: skip
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium_profile'}")
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def test_the_page_upscales_an_uploaded_photo_in_chromium(server, browser, photo, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 90)
    browser.get(server)
    upload = wait.until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "#upload input[type=file]")))
    upload.send_keys(str(photo))
    wait.until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "#upload img")))
    browser.find_element(By.CSS_SELECTOR, "#upscale").click()
    link = wait.until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "#download a[href]")))
    wait.until(expected_conditions.presence_of_all_elements_located((By.CSS_SELECTOR, "#comparison img")))
    time.sleep(1)  # let the slider's images paint before the screenshot
    assert browser.save_screenshot(str(tmp_path / "demo.png"))
    if os.environ.get("SR3_DEMO_SCREENSHOT"):
        shutil.copy(tmp_path / "demo.png", os.environ["SR3_DEMO_SCREENSHOT"])

    href = link.get_attribute("href")
    assert href.startswith(server) and href.endswith("astronaut_x4.png")
    with urllib.request.urlopen(href, timeout=30) as response:
        (tmp_path / "downloaded.png").write_bytes(response.read())
    result = PIL.Image.open(tmp_path / "downloaded.png")
    assert result.size == (4 * 64, 4 * 64)
    bicubic = app.bicubic(PIL.Image.open(photo), SR3Pipeline.load_config(SHIPPED_MODEL)["scale"])
    # The model changed the bicubic image, and visibly so (a mean change of more than one grey level).
    assert np.abs(pixels(result) - pixels(bicubic)).mean() > 1.0
