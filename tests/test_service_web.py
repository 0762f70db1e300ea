"""The web page in headless Chromium: it loads a photo, posts a box to /align and draws the landmarks."""
import contextlib
import itertools
import json
import re
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse

import httpx
import pytest
import uvicorn

from sdhrnet.settings import ServiceSettings
from service.app import create_app
from tests.services import wait_until
from tests.service_support import FakeJobs, FakeRegistry, b64, build_tiny_model, png_bytes



def _find_or_install_chromium() -> str | None:
    """The browser test is part of the suite: on a fresh Debian machine (as CI's is) install Debian's package once."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found or not shutil.which("apt-get") or os.geteuid() != 0:
        return found
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "install", "-y", "-q", "chromium"], ["apt-get", "update", "-q"],
                ["apt-get", "install", "-y", "-q", "chromium"]):
        try:
            ok = subprocess.run(cmd, env=env, capture_output=True, timeout=600).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            ok = False
        if ok and cmd[1] == "install":
            break
    return shutil.which("chromium")


CHROMIUM = _find_or_install_chromium()
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed "
                                "(apt-get install -y chromium); the web page test needs it")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def live_url(tmp_path_factory):
    model = build_tiny_model(tmp_path_factory.mktemp("web") / "m")
    app = create_app(ServiceSettings(model_poll_seconds=0), registry=FakeRegistry({"300w": [model]}),
                     jobs=FakeJobs(), api_keys=frozenset())
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           timeout_graceful_shutdown=1))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"

    def ready() -> bool:  # the model preloads in the background; a page opened before it finds no model
        try:
            return server.started and httpx.get(f"{base}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False
    wait_until(ready, 30, "the web test's API to load its model", interval=0.05)
    yield base
    server.should_exit = True
    thread.join(10)


def chromium(*args, timeout=60) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                           "--disable-dev-shm-usage", "--no-first-run", "--hide-scrollbars", *args],
                          capture_output=True, text=True, timeout=timeout)


def test_page_aligns_a_face_and_names_the_model(live_url, tmp_path):
    image = "data:image/png;base64," + b64(png_bytes(160, 120))
    url = f"{live_url}/?box=20,10,140,110&image=" + urllib.parse.quote(image, safe="")
    result = chromium("--virtual-time-budget=15000", "--dump-dom", url)
    dom = result.stdout
    assert 'data-state="done"' in dom, result.stderr[-2000:] + dom[-2000:]
    assert re.search(r'<span id="model">sdhrnet-300w v1 \(champion\)</span>', dom)
    assert '<span id="count">68</span>' in dom
    shot = tmp_path / "page.png"
    chromium("--virtual-time-budget=15000", "--window-size=900,800", f"--screenshot={shot}", url)
    assert shot.exists() and shot.stat().st_size > 5000


def test_page_finds_the_faces_of_a_photo_without_a_box(live_url, shared_data):
    import cv2

    photo = cv2.imread(str(shared_data / "300w" / "helen" / "trainset" / "100040721_1.jpg"))
    ok, jpeg = cv2.imencode(".jpg", cv2.resize(photo, (220, 220)))
    url = f"{live_url}/?image=" + urllib.parse.quote("data:image/jpeg;base64," + b64(jpeg.tobytes()), safe="")
    result = chromium("--virtual-time-budget=15000", "--dump-dom", url)
    dom = result.stdout
    assert 'data-state="done"' in dom and "Found 1 face" in dom, result.stderr[-2000:] + dom[-2000:]
    assert '<span id="faces">1</span>' in dom and '<span id="count">68</span>' in dom


def test_page_small_faces_finds_the_faces_one_look_cannot_see(live_url, shared_data):
    """Four faces of 70 px in a 700 px photo: the page finds fewer than four on its own, all four with "Small
    faces" ticked (the service scans tiles for faces down to 40 px)."""
    import cv2
    import numpy as np

    from bench.group_photos import group_photo
    from landmarks.datasets import load_image, load_samples
    from landmarks.face_detector import plan_looks

    dev = [(s, load_image(s)) for s in load_samples("300w", shared_data / "300w", "dev")[:4]]
    canvas, _, _ = group_photo(dev, 70, 700, 200, np.random.default_rng(0))
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    url = f"{live_url}/?image=" + urllib.parse.quote("data:image/jpeg;base64," + b64(jpeg.tobytes()), safe="")
    found, reach = {}, {}
    for small in ("0", "1"):
        dom = chromium("--virtual-time-budget=15000", "--dump-dom", f"{url}&small={small}").stdout
        assert 'data-state="done"' in dom or "No face found" in dom, dom[-2000:]
        found[small] = int(re.search(r'<span id="faces">(\d+)</span>', dom).group(1))
        reach[small] = re.search(r"searched down to (\d+) px", dom)
    assert found["0"] < 4 and found["1"] == 4, found
    # the status says how small a face was looked for: the 40 px asked for, which the tiles reach here
    assert plan_looks(700, 200, 40)[1] <= 40
    assert reach["0"] is None and reach["1"].group(1) == "40"


class DevTools:
    """Just enough of the Chrome DevTools Protocol to upload a file and drag the mouse like a person."""

    def __init__(self, ws):
        self.ws = ws
        self.ids = itertools.count(1)

    def call(self, method: str, **params):
        call_id = next(self.ids)
        self.ws.send(json.dumps({"id": call_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv(timeout=30))
            if message.get("id") == call_id:
                assert "error" not in message, message
                return message.get("result", {})

    def js(self, expression: str):
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

    def wait_js(self, expression: str, timeout: float = 30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.js(expression)
            if value:
                return value
            time.sleep(0.1)
        raise TimeoutError(f"{expression} stayed false; page status: {self.js('document.body.innerText')}")


@contextlib.contextmanager
def devtools_page(tmp_path):
    """A headless Chromium page driven through its DevTools protocol."""
    proc = subprocess.Popen([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                             "--disable-dev-shm-usage", "--no-first-run", "--remote-debugging-port=0",
                             f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1000,900", "about:blank"],
                            stderr=subprocess.PIPE, text=True)
    try:
        browser_ws = None
        deadline = time.monotonic() + 30
        while browser_ws is None and time.monotonic() < deadline:
            line = proc.stderr.readline()
            match = re.search(r"DevTools listening on (ws://\S+)", line)
            browser_ws = match.group(1) if match else None
        assert browser_ws, "Chromium did not open its DevTools port"
        port = re.search(r":(\d+)/", browser_ws).group(1)
        import urllib.request
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list") as response:
            page = next(t for t in json.load(response) if t["type"] == "page")
        from websockets.sync.client import connect

        with connect(page["webSocketDebuggerUrl"], max_size=None) as ws:
            yield DevTools(ws)
    finally:
        proc.terminate()
        proc.wait(20)


def _upload(tools, path):
    node = tools.call("DOM.querySelector", nodeId=tools.call("DOM.getDocument")["root"]["nodeId"], selector="#file")
    tools.call("DOM.setFileInputFiles", files=[str(path)], nodeId=node["nodeId"])


def _canvas_point(tools, x, y, photo_width):
    left, top, width, _ = tools.js("(() => { const r = document.getElementById('canvas').getBoundingClientRect();"
                                   " return [r.left, r.top, r.width, r.height]; })()")
    scale = width / photo_width  # canvas px per photo px
    return left + x * scale, top + y * scale


def _open_page(tools, live_url):
    """The page loaded, with its dataset list filled from the service."""
    tools.call("Page.enable")
    tools.call("Page.navigate", url=f"{live_url}/")
    tools.wait_js("document.readyState === 'complete' && document.getElementById('dataset').options.length > 0")


def _drag(dispatch, start, end, press, move, release):
    """A drag from `start` to `end` in five moves, with mouse or touch events of the DevTools protocol."""
    dispatch(press, start)
    for step in range(1, 6):
        dispatch(move, (start[0] + (end[0] - start[0]) * step / 5, start[1] + (end[1] - start[1]) * step / 5))
    dispatch(release, end)


def _mouse(tools):
    return lambda kind, at: tools.call("Input.dispatchMouseEvent", type=kind, x=at[0], y=at[1], button="left",
                                       clickCount=1)


def _touch(tools):
    return lambda kind, at: tools.call("Input.dispatchTouchEvent", type=kind,
                                       touchPoints=[] if kind == "touchEnd" else [{"x": at[0], "y": at[1]}])


def test_upload_a_photo_and_drag_a_box(live_url, tmp_path):
    photo = tmp_path / "photo.png"
    photo.write_bytes(png_bytes(200, 150))
    with devtools_page(tmp_path) as tools:
        _open_page(tools, live_url)
        _upload(tools, photo)
        tools.wait_js("document.getElementById('status').dataset.state === 'ready'")  # no face in noise
        start, end = _canvas_point(tools, 20, 10, 200), _canvas_point(tools, 150, 120, 200)
        _drag(_mouse(tools), start, end, "mousePressed", "mouseMoved", "mouseReleased")
        tools.wait_js("document.getElementById('status').dataset.state === 'done'")
        assert tools.js("document.getElementById('model').textContent") == "sdhrnet-300w v1 (champion)"
        assert tools.js("document.getElementById('count').textContent") == "68"
        # landmarks are drawn: red pixels on the canvas
        red = tools.js("(() => { const c = document.getElementById('canvas'); const d = c.getContext('2d')"
                       ".getImageData(0, 0, c.width, c.height).data; let n = 0;"
                       " for (let i = 0; i < d.length; i += 4) if (d[i] > 240 && d[i + 1] < 60 && d[i + 2] < 100) n++;"
                       " return n; })()")
        assert red > 20
        # the options reach the request: the second pass is on by default (a dragged box is loose), and turning
        # it off re-runs the dragged box with ?recrop=false
        tools.js("(() => { window.sent = []; const f = window.fetch; "
                 "window.fetch = (url, init) => { window.sent.push(String(url)); return f(url, init); }; })()")
        tools.js("document.getElementById('recrop').click()")
        tools.wait_js("window.sent.length === 1 && document.getElementById('status').dataset.state === 'done'")
        assert "recrop=false" in tools.js("window.sent[0]") and "flip=true" not in tools.js("window.sent[0]")
        tools.js("document.getElementById('recrop').click()")
        tools.wait_js("window.sent.length === 2 && document.getElementById('status').dataset.state === 'done'")
        assert "recrop=true" in tools.js("window.sent[1]")
        assert tools.js("document.getElementById('count').textContent") == "68"


def test_touch_drag_served_datasets_find_all_faces_and_errors_clear_the_model(live_url, tmp_path):
    photo = tmp_path / "photo.png"
    photo.write_bytes(png_bytes(200, 150))
    with devtools_page(tmp_path) as tools:
        _open_page(tools, live_url)
        # only the datasets with a served model are offered (the registry here holds 300w only)
        assert tools.js("[...document.getElementById('dataset').options].map((o) => o.value)") == ["300w"]
        assert tools.js("document.getElementById('dataset').options[0].text") == "300W (68 points)"
        _upload(tools, photo)
        tools.wait_js("document.getElementById('status').dataset.state === 'ready'")
        start, end = _canvas_point(tools, 20, 10, 200), _canvas_point(tools, 150, 120, 200)
        _drag(_touch(tools), start, end, "touchStart", "touchMove", "touchEnd")
        tools.wait_js("document.getElementById('status').dataset.state === 'done'")
        assert tools.js("document.getElementById('count').textContent") == "68", "a finger drags a box too"
        # the button forgets the box and lets the service find the faces (none in this noise)
        tools.js("document.getElementById('align').click()")
        tools.wait_js("document.getElementById('status').dataset.state === 'ready'")
        assert tools.js("document.getElementById('faces').textContent") == "0"
        # an error leaves no stale model line behind
        tools.js("document.getElementById('flip').click()")  # a successful request first: the model line is set
        # the click marks the page busy at once; wait for this answer, or it may land after the next one's error
        tools.wait_js("document.getElementById('status').dataset.state !== 'busy'")
        assert tools.js("document.getElementById('model').textContent").startswith("sdhrnet-300w")
        tools.js("(() => { const s = document.getElementById('dataset'); s.add(new Option('COFW', 'cofw'));"
                 " s.value = 'cofw'; s.dispatchEvent(new Event('change')); })()")
        tools.wait_js("document.getElementById('status').dataset.state === 'error'")
        assert tools.js("document.getElementById('model').textContent") == "–"
        assert tools.js("document.getElementById('count').textContent") == "0"
