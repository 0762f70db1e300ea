"""`sdhrnet align`: landmarks for the faces in image files and folders, without a server, answered as `/align` answers
them (the same detector, passes and JSON), one JSON line per image."""
from __future__ import annotations

import io
import json
import sys
import time
from pathlib import Path

from sdhrnet.cli import cannot_write, positive_int

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "default_model"
RECROP = {"on": True, "off": False, "auto": None}


class UsageError(ValueError):
    """Bad command-line input; reported without a traceback, exit code 2."""


def add_arguments(parser, command=None) -> None:
    parser.add_argument("images", nargs="+", help="image files, or folders whose images (searched recursively) "
                        "are aligned in name order")
    parser.add_argument("--model", default=str(DEFAULT_MODEL), help="model folder, model.onnx, MLflow run id, "
                        "runs:/ID or models:/NAME@ALIAS (default: the bundled 300W model)")
    parser.add_argument("--boxes", help="JSON list of face boxes [[x1, y1, x2, y2], ...] in image pixels, for a "
                        "single image; without it the faces are detected")
    parser.add_argument("--max-faces", type=int, default=None, help="without --boxes: keep the N most confident")
    parser.add_argument("--min-face-size", type=float, default=0.0, metavar="PX", help="without --boxes: leave "
                        "out faces whose box is smaller (/align's min_face_size)")
    parser.add_argument("--small-faces", action="store_true", help="without --boxes: also scan tiles of each photo "
                        "for faces too small for one look at the whole of it, down to --min-face-size "
                        "(/align's small_faces)")
    parser.add_argument("--flip", action="store_true", help="the flip test (/align's flip=true)")
    parser.add_argument("--recrop", choices=tuple(RECROP), default="auto", help="the second pass: auto (default) "
                        "as /align, on for detected faces and for boxes sent only on tilted or unsure ones")
    parser.add_argument("--threads", type=positive_int, default=None, help="ONNX Runtime threads (default: its own)")
    parser.add_argument("--out", help="write the JSON lines here instead of standard output")
    parser.add_argument("--draw", metavar="DIR", help="also write each image with its boxes and points into DIR")


def find_images(paths) -> list[Path]:
    found = []
    for text in paths:
        path = Path(text)
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            found.append(path)  # a missing or unreadable file gets its own error line
    if not found:
        raise UsageError(f"no images in {', '.join(map(str, paths))} (looked for {', '.join(IMAGE_SUFFIXES)})")
    return found


def read_photo(path: Path):
    """The file as the service reads an upload (landmarks.decode_scale.Photo: its size upright by its EXIF orientation),
    not yet decoded."""
    from PIL import Image

    from landmarks.decode_scale import Photo, read_header

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        return Photo.of(data, read_header(io.BytesIO(data)))
    except Image.DecompressionBombError:
        raise ValueError(f"{path} has more than {2 * Image.MAX_IMAGE_PIXELS} pixels; downscale it first") from None
    except Exception:  # whatever Pillow raises on a file it does not know
        raise ValueError(f"{path} is not an image OpenCV can decode ({', '.join(IMAGE_SUFFIXES)})") from None


def parse_boxes(text: str) -> list:
    """--boxes as JSON; the rules a box must meet are /align's (landmarks.answers.checked_boxes), checked against
    the image once it is read."""
    try:
        boxes = json.loads(text)
    except json.JSONDecodeError:
        raise UsageError("--boxes must be JSON like [[x1, y1, x2, y2]] with numbers in image pixels") from None
    if not isinstance(boxes, list) or not boxes:
        raise UsageError("--boxes must be a non-empty JSON list of [x1, y1, x2, y2] boxes in image pixels")
    return boxes


class Aligner:
    """The model and detector loaded once, then one /align-shaped answer per image."""

    def __init__(self, model: str, threads: int | None, flip: bool):
        from landmarks.face_detector import FaceDetector
        from landmarks.passes import eye_indices_for
        from trainer.evaluate import onnx_landmarker, resolve_model

        onnx_path, self.card = resolve_model(model)
        self.model = {"path": str(onnx_path), "dataset": self.card.get("dataset"),
                      "num_landmarks": self.card.get("num_landmarks")}
        if flip and not self.card.get("flip_pairs"):
            raise UsageError(f"the model card of {model} has no flip pairs, so it cannot run the flip test; drop --flip")
        self.eyes = eye_indices_for(self.card)
        self.landmarker = onnx_landmarker(onnx_path, input_size=self.card.get("input_size"),
                                          flip_pairs=self.card.get("flip_pairs"), threads=threads,
                                          eye_indices=self.eyes)
        self.detector = FaceDetector()
        self.flip = flip

    def answer(self, photo, boxes=None, recrop: bool | None = None, max_faces: int | None = None,
               min_face_size: float = 0.0, small_faces: bool = False) -> dict:
        """/align's answer for a photo not yet decoded (decode_scale.Photo), decoded as /align decodes it."""
        import numpy as np

        from landmarks.answers import (default_recrop, drop_non_faces, face_answers, faces_in_photo, photo_at_boxes,
                                       search_answer, search_photo)

        start = time.perf_counter()
        detected = None
        if boxes is None:
            image, factor, detected = search_photo(self.detector, photo, self.landmarker.input_size, max_faces,
                                                   min_face_size, small_faces)
            boxes = detected.boxes
        else:  # a BoxError is a usage error (run)
            image, factor, boxes = photo_at_boxes(photo, boxes, self.landmarker.input_size)
        second_pass = default_recrop(recrop, detected is not None)
        if len(boxes):
            aligned = self.landmarker.align(image, boxes, self.flip, second_pass,
                                            detected.rolls if detected is not None else np.zeros(len(boxes)),
                                            self.detector.tilt_at, detected.framed if detected is not None else None)
            aligned, detected = drop_non_faces(aligned, detected, max_faces)
            faces = faces_in_photo(face_answers(*aligned, self.eyes, detected), factor)
        else:
            faces = []
        return {"faces": faces, "model": self.model, "recrop": bool(second_pass),
                "detection": search_answer(detected, factor),
                "timing_ms": {"total": round((time.perf_counter() - start) * 1e3, 3)}}


def draw(image, faces: list[dict], path: Path) -> None:
    """The image with each face's box (turned by its box_roll) and points, as the web page draws them."""
    import cv2
    import numpy as np

    from landmarks.answers import box_corners

    canvas = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    thick = max(1, round(max(image.shape[:2]) / 500))
    for face in faces:
        corners = np.round(box_corners(face["box"], face["box_roll"])).astype(np.int32)
        cv2.polylines(canvas, [corners], True, (83, 200, 0), thick, cv2.LINE_AA)
        for x, y in face["landmarks"]:
            cv2.circle(canvas, (round(x), round(y)), thick + 1, (0, 64, 255), -1, cv2.LINE_AA)
    if not cv2.imwrite(str(path), canvas):
        raise ValueError(f"cannot write {path}")


def run(args, out) -> int:
    """-> 0 when every image was answered, 1 when some could not be (each has an error line)."""
    from landmarks.answers import BoxError

    images = find_images(args.images)
    boxes = parse_boxes(args.boxes) if args.boxes else None
    if boxes is not None and len(images) != 1:
        raise UsageError(f"--boxes are the boxes of one image; {len(images)} images were given")
    if args.max_faces is not None and args.max_faces < 1:
        raise UsageError("--max-faces must be at least 1")
    if args.min_face_size < 0:
        raise UsageError("--min-face-size must be 0 or more")
    if args.draw:  # made before the model loads, so that a folder that cannot be made fails at once
        if Path(args.draw).exists() and not Path(args.draw).is_dir():
            raise UsageError(f"cannot write --draw {args.draw}: it is a file; --draw takes a folder")
        try:
            Path(args.draw).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(cannot_write("--draw", args.draw, exc)) from None
    aligner = Aligner(args.model, args.threads, args.flip)
    failed, drawn = 0, set()
    for path in images:
        line = {"image": str(path)}
        try:
            photo = read_photo(path)
            line.update(aligner.answer(photo, boxes, RECROP[args.recrop], args.max_faces, args.min_face_size,
                                       args.small_faces))
            if args.draw:
                name, n = path.stem, 1
                while name in drawn:  # photos of the same name in different folders
                    name, n = f"{path.stem}-{n}", n + 1
                drawn.add(name)
                draw(photo.decode()[0], line["faces"], Path(args.draw) / f"{name}.png")
                line["drawn"] = str(Path(args.draw) / f"{name}.png")
        except BoxError as exc:  # --boxes go with one image: the command line is what to fix
            raise UsageError(f"--boxes: {exc}") from None
        except ValueError as exc:
            line["error"] = str(exc)
            failed += 1
        out.write(json.dumps(line) + "\n")
        out.flush()
    if failed:
        print(f"sdhrnet align: {failed} of {len(images)} images could not be aligned (their lines say why)",
              file=sys.stderr)
    return 1 if failed else 0


def main(args) -> int:
    try:
        if args.out:
            try:
                out = open(args.out, "w")
            except OSError as exc:
                raise UsageError(cannot_write("--out", args.out, exc)) from None
            with out:
                return run(args, out)
        return run(args, sys.stdout)
    except (ValueError, FileNotFoundError, OSError) as exc:  # user mistakes: a message, not a traceback
        print(f"sdhrnet align: error: {exc}", file=sys.stderr)
        return 2
