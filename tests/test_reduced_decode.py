"""Large JPEGs are decoded at 1/2, 1/4 or 1/8 when every face asked about keeps enough pixels for the landmark network
(landmarks.decode_scale): the points land where a full decode puts them, in pixels of the full photo."""
import io

import cv2
import numpy as np
import pytest
from PIL import Image

from landmarks import decode_scale
from landmarks.decode_scale import Photo, read_header, to_decoded, to_photo
from sdhrnet.cli import main as cli
from tests.service_support import b64
from tests.test_align_command import client  # noqa: F401  (the served default model in an app, module-wide)

PHOTO = "helen/trainset/100040721_1.jpg"  # a dev face, about 200 px across in a 440 px photo
ENLARGE = 8  # -> a 3520 px photo (12 megapixels) whose face spans about 1600 px


def jpeg(rgb: np.ndarray, orientation: int = 1) -> bytes:
    image = Image.fromarray(rgb)
    exif = image.getexif()
    if orientation != 1:
        exif[decode_scale.EXIF_ORIENTATION] = orientation
    out = io.BytesIO()
    image.save(out, "JPEG", quality=92, exif=exif)
    return out.getvalue()


def photo_of(data: bytes) -> Photo:
    return Photo.of(data, read_header(io.BytesIO(data)))


@pytest.fixture(scope="module")
def small(shared_data):
    return cv2.cvtColor(cv2.imread(str(shared_data / "300w" / PHOTO)), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def large(small):
    h, w = small.shape[:2]
    return jpeg(cv2.resize(small, (w * ENLARGE, h * ENLARGE), interpolation=cv2.INTER_CUBIC))


@pytest.fixture()
def factors(monkeypatch):
    """The reductions photos were decoded at, in order."""
    seen = []
    decode = Photo.decode

    def spy(self, factor=1, timing=None):
        image, used = decode(self, factor, timing)
        seen.append(used)
        return image, used
    monkeypatch.setattr(Photo, "decode", spy)
    return seen


def test_pixel_centres_map_both_ways_and_a_factor_divides_both_sides():
    points = np.array([[0.0, 0.0], [3.5, 7.25], [4031.0, 3023.0]])
    for f in (1, 2, 4, 8):
        np.testing.assert_allclose(to_photo(to_decoded(points, f), f), points)
    np.testing.assert_allclose(to_photo([[0.0, 1.0]], 8), [[3.5, 11.5]])  # pixel 0 at 1/8 covers pixels 0..7
    need = decode_scale.smallest_face_px(128)
    assert decode_scale.decode_factor(8 * need, 128, 4032, 3024, jpeg=True) == 8
    assert decode_scale.decode_factor(8 * need - 1, 128, 4032, 3024, jpeg=True) == 4
    assert decode_scale.decode_factor(need - 1, 128, 4032, 3024, jpeg=True) == 1
    assert decode_scale.decode_factor(8 * need, 128, 4036, 3024, jpeg=True) == 4  # 4036 = 4 x 1009
    assert decode_scale.decode_factor(8 * need, 128, 4033, 3024, jpeg=True) == 1
    assert decode_scale.decode_factor(8 * need, 128, 4032, 3024, jpeg=False) == 1  # only JPEG scales in the DCT


@pytest.mark.parametrize("orientation", [1, 6, 3])
def test_a_reduced_decode_keeps_every_pixel_where_the_full_decode_has_it(orientation):
    """Blurred dots at known places: their centroids at 1/8 map back onto the full decode's, turned upright by the
    EXIF orientation alike."""
    h, w = 1200, 1600
    canvas = np.zeros((h, w, 3), np.uint8)
    dots = [(403, 277), (1000, 600), (1333, 1022)]
    for x, y in dots:
        cv2.circle(canvas, (x, y), 10, (255, 255, 255), -1)
    photo = photo_of(jpeg(cv2.GaussianBlur(canvas, (0, 0), 5), orientation))
    full, one = photo.decode(1)
    small, eight = photo.decode(8)
    assert (one, eight) == (1, 8) and (photo.height, photo.width) == full.shape[:2]
    assert full.shape[:2] == ((h, w) if orientation in (1, 3) else (w, h))
    assert small.shape[:2] == (full.shape[0] // 8, full.shape[1] // 8)

    def centroids(image, factor):
        """Intensity-weighted centroids in a window of 40 full-photo pixels around each dot."""
        grey = image[..., 0].astype(float)
        ys, xs = np.mgrid[:grey.shape[0], :grey.shape[1]]
        found = []
        for cx, cy in to_decoded(upright, factor):
            near = (np.abs(xs - cx) <= 40 / factor) & (np.abs(ys - cy) <= 40 / factor)
            found.append(((grey * xs)[near].sum() / grey[near].sum(), (grey * ys)[near].sum() / grey[near].sum()))
        return to_photo(found, factor)

    # where the dots are once the photo is turned upright (3: by 180 degrees, 6: by 90 clockwise)
    upright = {1: dots, 3: [(w - 1 - x, h - 1 - y) for x, y in dots], 6: [(h - 1 - y, x) for x, y in dots]}[orientation]
    np.testing.assert_allclose(centroids(full, 1), upright, atol=0.1)
    np.testing.assert_allclose(centroids(small, 8), upright, atol=0.2)


def test_align_decodes_a_large_photo_as_finely_as_its_face_needs(client, small, large, factors):
    """The face spans about 1600 px: it is searched at 1/4 (the longer side 880 px), then aligned at 1/4 with its
    box sent and after the search, and lands where the 440 px photo's answer puts it, enlarged."""
    reference = client.post("/align", json={"image": b64(jpeg(small))}).json()["faces"][0]
    factors.clear()
    found = client.post("/align", json={"image": b64(large)}).json()
    assert factors == [4] and found["detection"]["smallest_face"] > 400
    face = found["faces"][0]
    enlarged = to_photo(reference["landmarks"], ENLARGE)
    side = face["box"][2] - face["box"][0]
    assert 1000 < side < 2500
    assert np.linalg.norm(np.asarray(face["landmarks"]) - enlarged, axis=1).mean() < 0.01 * side
    factors.clear()
    sent = client.post("/align?recrop=true", json={"image": b64(large), "boxes": [face["box"]]}).json()["faces"][0]
    assert factors == [4], "a detected face's box sent back is decoded as finely as the search left it"
    # ... and answered as it was detected (README: the box of a detected face, sent back with ?recrop=true)
    assert sent["box"] == pytest.approx(face["box"])
    np.testing.assert_allclose(sent["landmarks"], face["landmarks"], atol=0.01)


def test_a_detected_box_sent_back_gets_its_landmarks_whatever_the_reduction(client, small):
    """Where the search's first look and the face's box call for different reductions (here the face alone would
    be decoded at 1/8, the search looks at 1/4), the face is searched again at the box's reduction."""
    h, w = small.shape[:2]
    k = 9  # a 3960 px photo, its face about 1650 px: 1/8 leaves 206 px, the smallest allowed is 205
    large = jpeg(cv2.resize(small, (w * k, h * k), interpolation=cv2.INTER_CUBIC))
    found = client.post("/align", json={"image": b64(large)}).json()
    face = found["faces"][0]
    assert face["box"][2] - face["box"][0] >= 8 * decode_scale.smallest_face_px(128)
    sent = client.post("/align?recrop=true", json={"image": b64(large), "boxes": [face["box"]]}).json()["faces"][0]
    np.testing.assert_allclose(sent["landmarks"], face["landmarks"], atol=0.01)


def test_small_faces_search_the_full_photo_and_small_boxes_keep_it(client, large, factors):
    found = client.post("/align?small_faces=true&max_faces=1", json={"image": b64(large)}).json()
    assert factors == [1, 4], "the tiles look at every pixel; the face found is then aligned as its size allows"
    assert found["detection"]["smallest_face"] < 500 and len(found["faces"]) == 1
    factors.clear()
    client.post("/align", json={"image": b64(large), "boxes": [[1000, 1000, 1150, 1150]]})
    assert factors == [1]


def test_the_command_answers_a_large_photo_as_align_does(client, large, tmp_path):
    import json

    path = tmp_path / "large.jpg"
    path.write_bytes(large)
    out = tmp_path / "lines.jsonl"
    assert cli(["align", str(path), "--out", str(out)]) == 0
    mine = json.loads(out.read_text())["faces"]
    served = client.post("/align", json={"image": b64(large)}).json()["faces"]
    assert len(mine) == len(served) == 1
    np.testing.assert_allclose(mine[0]["landmarks"], served[0]["landmarks"], atol=0.5)
