"""The face detector for POST /align and /evaluate: faces where the request brings no boxes, and the tilt of a face in
a box sent; one detector per app, loaded on first use."""
import asyncio
import threading

import numpy as np

from landmarks import answers
from landmarks.decode_scale import Photo

from .errors import InputError, Problem
from .images import decoded

_create_lock = threading.Lock()


def _detector(state):
    detector = getattr(state, "face_detector", None)
    if detector is None:
        with _create_lock:  # two first requests at once must not both read the model
            detector = getattr(state, "face_detector", None)
            if detector is None:
                from landmarks.face_detector import FaceDetector

                try:
                    detector = FaceDetector()
                except Exception as exc:  # a broken install, not the client's mistake
                    raise Problem(503, "the face detector could not be loaded (the server log says why); send "
                                       "boxes with the image, or reinstall the package") from exc
                state.face_detector = detector
    return detector


def tilt_checker(app):
    """The face detector's tilt and box for a face box (FaceDetector.tilt_at: a passes.FaceTurn), which the landmarker
    asks about the faces its first pass is unsure of; the detector loads on first use, and where it cannot, faces keep
    their crops' turn."""
    state = app.state

    def tilt_at(image, box):
        try:
            detector = _detector(state)
        except Problem:
            return None
        return detector.tilt_at(image, box)

    return tilt_at


def check_max_faces(max_faces: int | None, limit: int) -> int:
    """-> the number of faces to keep; the request's limits become 422s that say what to send."""
    if max_faces is None:
        return limit
    if max_faces > limit:
        raise InputError(f"max_faces={max_faces} is more than the {limit} faces one request may align; "
                         f"ask for at most {limit}")
    return max_faces


async def find_faces(app, photo: Photo, input_size: int, max_faces: int, min_face_size: float, small_faces: bool,
                     limit: int, timing: dict) -> tuple[np.ndarray, int, object]:
    """-> (the photo decoded, its reduction, the Detections to landmark in its pixels: landmarks.answers.search_photo);
    `limit`: how many faces one request may align. Adds "decode" and "detect" milliseconds to `timing`; observes
    detection time and faces per image in /metrics."""
    state = app.state
    image, factor, detections = await asyncio.to_thread(
        lambda: decoded(answers.search_photo, _detector(state), photo, input_size, max_faces, min_face_size,
                        small_faces, limit, timing))
    state.metrics.detection_seconds.observe(timing["detect"] / 1e3)
    state.metrics.faces_per_image.observe(len(detections))
    state.metrics.detection_looks.observe(detections.looks)
    return image, factor, detections
