"""The listener app's page in a real headless browser (Debian's chromium and
chromedriver through selenium): annotate by moving the pad while a song
plays, pause mid-song, seek back and play a passage again, submit, wait for
personalization, open another song and check what the page stored and shows.

Set PDMER_APP_SCREENSHOTS=<folder> to also save the screenshots used in
the documentation.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the app extra is not installed (pip install 'pdmer[app]')")
httpx = pytest.importorskip("httpx", reason="the tests' HTTP client (httpx) is not installed")
webdriver = pytest.importorskip("selenium.webdriver",
                                reason="selenium is not installed (pip install selenium)")

from app_fixture import serve, trained  # noqa: E402
from pdmer import ListenerAdaptation, load  # noqa: E402
from pdmer.app import create_app  # noqa: E402
from pdmer.app.storage import AdaptationData, Database  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="Debian's chromium and chromium-driver are not installed "
           "(apt-get install chromium chromium-driver; .ci/run does)")

PAD = 320  # CSS pixels of the pad canvas
SPEED = 2.0  # playback rate: the curve must follow the audio clock, not the wall clock


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    built = trained(tmp_path_factory)
    data_dir = tmp_path_factory.mktemp("browser-app")
    with serve(create_app(built["model"], built["songs"], data_dir=data_dir,
                          prefetch=False)) as url:
        yield dict(url=url, data_dir=data_dir, **built)


@pytest.fixture(scope="module")
def browser():
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="pdmer-chromium-")
    # No network beyond 127.0.0.1 on test machines: keep chromium from trying.
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--mute-audio",
                 "--autoplay-policy=no-user-gesture-required", "--window-size=1280,1000",
                 f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_script_timeout(30)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def wait(condition, timeout=30, message="timed out"):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, message
        time.sleep(0.05)


def js(driver, script, *args):
    return driver.execute_script(script, *args)


def visible(driver, element_id):
    return js(driver, f"return !document.getElementById('{element_id}').closest('section').hidden"
                      f" && document.getElementById('{element_id}').offsetParent !== null")


def move_pad(driver, arousal, valence):
    """Press on the pad where (arousal, valence) is; returns the values the page
    computes for that pixel and the audio time just before and after."""
    from selenium.webdriver import ActionChains

    pad = driver.find_element("id", "pad")
    dx, dy = round(valence * PAD / 2), round(-arousal * PAD / 2)
    before = js(driver, "return document.getElementById('annotate-audio').currentTime")
    ActionChains(driver).move_to_element_with_offset(pad, dx, dy).click_and_hold().release().perform()
    after = js(driver, "return document.getElementById('annotate-audio').currentTime")
    shown = (float(driver.find_element("id", "arousal").get_attribute("value")),
             float(driver.find_element("id", "valence").get_attribute("value")))
    return shown, before, after


def screenshot(driver, name):
    folder = os.environ.get("PDMER_APP_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(folder) / name))


def open_song(driver, title, action):
    from selenium.common.exceptions import StaleElementReferenceException

    driver.get(driver.current_url.split("#")[0] + "#/songs")

    def click():
        try:
            for row in driver.find_elements("css selector", "#songs tbody tr"):
                if row.find_element("css selector", "td").text == title:
                    song_id = int(row.get_attribute("data-song-id"))
                    row.find_element("class name", f"{action}-link").click()
                    return song_id
        except StaleElementReferenceException:  # the list was being redrawn
            return None

    song_id = wait(click, message=f"no {action} link for {title}")
    audio = f"{action}-audio"
    wait(lambda: js(driver, f"const a = document.getElementById('{audio}');"
                            "return a.src.startsWith('blob:') && a.readyState >= 3"),
         message=f"the {action} page's audio did not load")
    return song_id


def test_annotate_personalize_listen_in_a_real_browser(app_url, browser):
    driver = browser
    driver.get(app_url["url"])
    wait(lambda: visible(driver, "new-name"), message="the start page did not show")
    driver.find_element("id", "new-name").send_keys("alice")
    driver.find_element("css selector", "#new-listener button").click()
    wait(lambda: visible(driver, "songs") and driver.find_elements(
        "css selector", "#songs tbody tr"), message="the song list did not show")
    token = js(driver, "return localStorage.getItem('pdmer-token')")

    # ---------------------------------------------------------------- annotate
    open_song(driver, "S000", "annotate")
    n_frames = int(driver.find_element("id", "frames-total").text)
    assert n_frames == 12  # 6 s from 0 s
    first, _, _ = move_pad(driver, 0.8, 0.6)
    js(driver, f"const a = document.getElementById('annotate-audio'); a.playbackRate = {SPEED};"
               "a.play();")
    audio_time = lambda: js(driver, "return document.getElementById('annotate-audio').currentTime")  # noqa: E731
    wait(lambda: audio_time() >= 2.2, timeout=20)
    second, change_from, change_to = move_pad(driver, -0.7, -0.5)
    wait(lambda: audio_time() >= 3.7, timeout=20)
    # Pause mid-frame, wait on the wall clock, move the point, resume: nothing may shift.
    js(driver, "document.getElementById('annotate-audio').pause()")
    paused_at = audio_time()
    time.sleep(1.0)
    third, _, _ = move_pad(driver, 0.5, -0.8)
    time.sleep(0.5)
    assert audio_time() == paused_at
    js(driver, "document.getElementById('annotate-audio').play()")
    wait(lambda: js(driver, "return document.getElementById('annotate-audio').ended"),
         timeout=20, message="the song did not play to its end")
    wait(lambda: driver.find_element("id", "frames-done").text == str(n_frames),
         message="not every frame was annotated")
    # Seek back to 1 s and play a passage again: it replaces what was drawn there.
    js(driver, "document.getElementById('annotate-audio').currentTime = 1.0")
    wait(lambda: js(driver, "const a = document.getElementById('annotate-audio');"
                            "return !a.seeking && Math.abs(a.currentTime - 1) < 0.01"))
    fourth, _, _ = move_pad(driver, -0.4, 0.7)
    js(driver, "document.getElementById('annotate-audio').play()")
    wait(lambda: audio_time() >= 1.7, timeout=20)
    js(driver, "document.getElementById('annotate-audio').pause()")
    replayed_to = audio_time()
    assert driver.find_element("id", "frames-done").text == str(n_frames)
    # The curve drawn so far: arousal's red on the canvas.
    red = js(driver, """const c = document.getElementById('annotate-curve');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0;
        for (let i = 0; i < d.length; i += 4) if (d[i] > 180 && d[i+1] < 110 && d[i+2] < 130) n++;
        return n;""")
    assert red > 200, "the annotation curve is not drawn"
    screenshot(driver, "app_annotate.png")

    driver.find_element("id", "submit-annotation").click()
    wait(lambda: js(driver, "return document.getElementById('job-status').dataset.status")
         == "done", timeout=60, message="personalization did not finish")
    assert "Personalized" in driver.find_element("id", "job-status").text
    progress = driver.find_element("id", "job-progress")
    assert progress.get_attribute("value") == progress.get_attribute("max") == "4"
    assert "personalized" == driver.find_element("id", "listener-status").text

    # The stored curve: 2 Hz on the audio clock.
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=app_url["url"], headers=headers) as client:
        [summary] = client.get("/api/me").json()["annotations"]
        stored = client.get(f"/api/annotations/{summary['id']}").json()
    assert stored["time"] == [0.5 * i for i in range(n_frames)]
    curve = np.c_[stored["labels"]["arousal"], stored["labels"]["valence"]]
    for i, values in enumerate(curve):
        start, end = 0.5 * i, 0.5 * (i + 1)
        if 1.0 <= start < replayed_to:
            expected = [fourth]
        elif end <= change_from:
            expected = [first]
        elif change_to <= start and end <= paused_at:
            expected = [second]
        elif start >= paused_at:
            expected = [third]
        else:  # a frame during which the point moved: a mix of the two positions
            low, high = (second, third) if start >= change_to else (first, second)
            assert np.all(values >= np.minimum(low, high) - 0.02), (i, values)
            assert np.all(values <= np.maximum(low, high) + 0.02), (i, values)
            continue
        np.testing.assert_allclose(values, expected[0], atol=0.011, err_msg=f"frame {i}")
    # Frames after the pause exist, so the loop above checked that the second
    # of wall-clock pause added nothing and shifted nothing.
    assert paused_at < 5.0 and np.allclose(curve[-1], third, atol=0.011)
    # In the frame the pause fell in, the time spent paused weighs nothing: the
    # position before the pause keeps at least its share of the frame's audio
    # (more when chromium's clock jumps ahead on resuming, as it does by ~0.15 s).
    k = int(paused_at // 0.5)
    before_pause = (curve[k, 0] - third[0]) / (second[0] - third[0])
    assert before_pause > (paused_at - 0.5 * k) / 0.5 - 0.25, (curve[k], paused_at)

    # ------------------------------------------------------------------ listen
    song_id = open_song(driver, "S001", "listen")
    wait(lambda: driver.find_element("id", "personal-arousal").text not in ("", "–"),
         message="no personal curve shown")
    js(driver, "document.getElementById('listen-audio').currentTime = 2.3")
    wait(lambda: driver.find_element("id", "personal-arousal").get_attribute("data-frame") == "4")
    shown = {f"{who}-{dim}": float(driver.find_element("id", f"{who}-{dim}").text)
             for who in ("personal", "population") for dim in ("arousal", "valence")}
    with httpx.Client(base_url=app_url["url"], headers=headers) as client:
        served = client.get(f"/api/songs/{song_id}/predictions").json()
    db = Database(f"sqlite:///{app_url['data_dir'] / 'app.sqlite'}")
    with db.session() as session:
        blob = session.get(AdaptationData, served["adaptation_id"]).data
    db.dispose()
    listener_file = app_url["data_dir"] / "alice.safetensors"
    listener_file.write_bytes(blob)
    model = load(app_url["model"])
    song = app_url["songs"] / "S001.wav"
    [personal] = model.predict([song], listener=ListenerAdaptation.load(listener_file))
    [population] = model.predict([song])
    assert shown["personal-arousal"] == pytest.approx(personal[4, 0], abs=6e-4)
    assert shown["personal-valence"] == pytest.approx(personal[4, 1], abs=6e-4)
    assert shown["population-arousal"] == pytest.approx(population[4, 0], abs=6e-4)
    assert not np.allclose(personal, population, atol=1e-3)
    assert served["personal"]["arousal"] == pytest.approx(personal[:, 0].tolist(), abs=1e-5)

    # The readout follows playback.
    js(driver, "const a = document.getElementById('listen-audio'); a.currentTime = 0; a.play();")
    wait(lambda: js(driver, "return document.getElementById('listen-audio').currentTime") > 3.1)
    screenshot(driver, "app_listen.png")
    for _ in range(5):
        t, frame = js(driver, "return [document.getElementById('listen-audio').currentTime, "
                              "+document.getElementById('personal-arousal').dataset.frame]")
        assert abs(frame - min(int(t // 0.5), 11)) <= 1, (t, frame)
        time.sleep(0.1)

    # Everything the page loaded came from the app itself.
    sources = js(driver, "return performance.getEntriesByType('resource').map(e => e.name)")
    assert sources and all(s.startswith((app_url["url"], "blob:")) for s in sources), sources
    logs = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert not logs, logs


def test_a_first_visit_lists_every_song_once(app_url, browser):
    # Creating a listener set location.hash (whose hashchange routes) and then
    # routed again: two overlapping song lists, each appending every row. It
    # showed in about 1 first visit in 3, so visit a few times.
    driver = browser
    titles = sorted(p.stem for p in Path(app_url["songs"]).iterdir())
    for visit in range(4):
        driver.get(app_url["url"] + "/")
        js(driver, "localStorage.clear()")
        driver.get("about:blank")
        driver.get(app_url["url"] + "/")  # no hash, no token: a newcomer
        wait(lambda: visible(driver, "new-name"), message="the start page did not show")
        driver.find_element("id", "new-name").send_keys(f"newcomer{visit}")
        driver.find_element("css selector", "#new-listener button").click()
        wait(lambda: len(driver.find_elements("css selector", "#songs tbody tr"))
             >= len(titles), message="the song list did not show")
        time.sleep(0.5)  # room for a second list to arrive
        shown = js(driver, "return [...document.querySelectorAll('#songs tbody tr')]"
                           ".map(r => r.cells[0].textContent)")
        assert sorted(shown) == titles, f"visit {visit}: {shown}"
        assert driver.current_url.endswith("#/songs")


def test_the_api_docs_show_the_authorization_header(app_url, browser):
    driver = browser
    driver.get(app_url["url"] + "/docs")
    text = wait(lambda: js(driver, "const d = document.querySelector('.info .description');"
                                   "return d && d.innerText"),
                message="the docs page did not render its description")
    assert "Authorization: Bearer <token>" in text, text
    assert "Bearer '" not in text


def test_the_pad_names_the_quadrants_as_the_plots_do(app_url, browser):
    from pdmer.plotting import QUADRANTS

    driver = browser
    driver.get(app_url["url"] + "/")
    wait(lambda: js(driver, "return state.info !== null"), message="the page did not load")
    # The page's own drawing of the plane's axes, with fillText recorded.
    drawn = js(driver, """const texts = [];
        const ctx = document.createElement('canvas').getContext('2d');
        const fill = ctx.fillText.bind(ctx);
        ctx.fillText = (text, x, y) => { texts.push([text, x, y]); fill(text, x, y); };
        planeAxes(ctx, 320, 320);
        return texts;""")
    where = {text: (x > 160, y < 160) for text, x, y in drawn}
    assert {name: (signs[0] > 0, signs[1] > 0) for name, signs in QUADRANTS.items()} == {
        name: where[name] for name in QUADRANTS}
    assert "excited" not in where
