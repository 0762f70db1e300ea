"""Image + face boxes -> landmarks, shared by serving and evaluation (numpy + OpenCV + onnxruntime, no
torch), so that the service reports exactly the numbers the trainer measured."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from landmarks import geometry, heatmaps as hm
from landmarks.passes import face_passes, run_passes


class InvalidInputError(ValueError):
    """The image, boxes or heatmaps given to the landmarker are unusable."""


def validate_image(image) -> np.ndarray:
    if not isinstance(image, np.ndarray):
        raise InvalidInputError(f"image must be a numpy array, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise InvalidInputError(f"image must be RGB H x W x 3, got shape {image.shape}")
    if image.dtype != np.uint8:
        raise InvalidInputError(f"image must be uint8, got {image.dtype}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise InvalidInputError(f"image is empty: shape {image.shape}")
    return image


def validate_boxes(boxes) -> np.ndarray:
    try:
        b = np.asarray(boxes, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"boxes must be numbers [[x1, y1, x2, y2], ...]: {exc}") from None
    if b.ndim == 1 and b.size == 4:
        b = b[None]
    if b.size == 0:
        return np.zeros((0, 4))
    if b.ndim != 2 or b.shape[1] != 4:
        raise InvalidInputError(f"boxes must have shape (N, 4) as [x1, y1, x2, y2], got {b.shape}")
    for i, box in enumerate(b):
        try:
            geometry.validate_box(box)
        except ValueError as exc:
            raise InvalidInputError(f"box {i}: {exc}") from None
    return b


def prepare_faces(image_rgb, boxes, input_size: int, rolls=None) -> tuple[np.ndarray, np.ndarray]:
    """-> (batch float32 (N, 3, S, S) normalised, transforms float64 (N, 2, 3) image px -> input px). `rolls`
    (N,) degrees: each crop turned with its face (geometry.crop_face); none: every crop upright."""
    image = validate_image(image_rgb)
    b = validate_boxes(boxes)
    if not (isinstance(input_size, (int, np.integer)) and input_size > 0 and input_size % hm.STRIDE == 0):
        raise InvalidInputError(f"input_size must be a positive multiple of {hm.STRIDE}, got {input_size!r}")
    r = np.zeros(len(b)) if rolls is None else np.asarray(rolls, dtype=np.float64).reshape(-1)
    if r.shape != (len(b),) or not np.all(np.isfinite(r)):
        raise InvalidInputError(f"rolls must be {len(b)} finite angles in degrees, one per box, got {np.shape(rolls)}")
    batch = np.empty((len(b), 3, input_size, input_size), dtype=np.float32)
    transforms = np.empty((len(b), 2, 3), dtype=np.float64)
    for i, box in enumerate(b):
        crop, m = geometry.crop_face(image, box, input_size, r[i])
        batch[i] = geometry.normalize_crop(crop)
        transforms[i] = m
    return batch, transforms


def flip_batch(batch: np.ndarray) -> np.ndarray:
    """Mirror input crops horizontally (the flip test's second pass)."""
    return np.ascontiguousarray(batch[..., ::-1])


def merge_flipped(heatmaps, flip_heatmaps, flip_pairs):
    """Average heatmaps with those of the mirrored input, mirrored back with left/right swapped. NumPy arrays (the
    service) or torch tensors (a distillation teacher's flip test, trainer.distill)."""
    perm = geometry.flip_permutation(flip_pairs, heatmaps.shape[1])
    back = flip_heatmaps[:, perm]
    # torch has no negative-step slices; NumPy arrays have no .flip method
    back = back.flip(-1) if hasattr(back, "flip") else back[..., ::-1]
    return (heatmaps + back) * 0.5


def heatmaps_to_landmarks(heatmaps, transforms, flip_heatmaps=None, flip_pairs=None,
                          refine: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(N, M, h, w) heatmaps + (N, 2, 3) transforms from prepare_faces -> (landmarks (N, M, 2) float64 in
    original-image px, confidence (N, M) float32 = heatmap peak). `refine`: see heatmaps.decode."""
    h = np.asarray(heatmaps, dtype=np.float32)
    t = np.asarray(transforms, dtype=np.float64)
    if h.ndim != 4:
        raise InvalidInputError(f"heatmaps must be (N, M, h, w), got shape {h.shape}")
    if t.shape != (h.shape[0], 2, 3):
        raise InvalidInputError(f"transforms must be (N, 2, 3) for {h.shape[0]} faces, got {t.shape}")
    if flip_heatmaps is not None:
        f = np.asarray(flip_heatmaps, dtype=np.float32)
        if f.shape != h.shape:
            raise InvalidInputError(f"flip heatmaps {f.shape} do not match heatmaps {h.shape}")
        if flip_pairs is None:
            raise InvalidInputError("the flip test needs the dataset's flip_pairs")
        h = merge_flipped(h, f, flip_pairs)
    points, maxvals = hm.decode(h, refine)
    points = hm.heatmap_to_input(points)
    out = np.empty_like(points)
    for i in range(len(points)):
        out[i] = geometry.transform_points(points[i], geometry.invert_affine(t[i]))
    return out, maxvals


class OnnxLandmarker:
    """ONNX model (input "image" N x 3 x S x S, output "heatmaps") + the shared pre/post-processing."""

    def __init__(self, onnx_path, input_size: int | None = None, flip_pairs=None, threads: int | None = None,
                 batch_size: int = 16, refine: str | None = None, eye_indices=None):
        """`eye_indices`: the layout's outer eye corners (DatasetInfo.norm_indices), which tell the second pass how a
        face is tilted; without them a second pass keeps the turn of the face's first crop."""
        import onnxruntime as ort

        path = Path(onnx_path)
        if not path.is_file():
            raise FileNotFoundError(f"ONNX model not found: {path}")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
            options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.output_name = self.session.get_outputs()[0].name
        static = inp.shape[-1] if isinstance(inp.shape[-1], int) else None
        if input_size is None:
            if static is None:
                raise ValueError(f"{path}: the model has a dynamic input size; pass input_size")
            input_size = static
        elif static is not None and static != input_size:
            raise ValueError(f"{path}: model expects {static} px inputs, input_size={input_size} given")
        self.input_size = int(input_size)
        self.flip_pairs = [tuple(p) for p in flip_pairs] if flip_pairs is not None else None
        self.eye_indices = tuple(eye_indices) if eye_indices is not None else None
        self.batch_size = max(1, int(batch_size))
        if refine is not None and refine not in hm.REFINEMENTS:
            raise ValueError(f"refine must be one of {hm.REFINEMENTS}, got {refine!r}")
        self.refine = refine

    def run(self, batch: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        outs = [self.session.run([self.output_name], {self.input_name: batch[i:i + self.batch_size]})[0]
                for i in range(0, len(batch), self.batch_size)]
        return np.concatenate(outs, axis=0) if outs else np.zeros((0,), np.float32)

    def predict(self, image_rgb, boxes, flip_test: bool = False, recrop: bool | None = False,
                rolls=None, tilt_at=None, framed=None) -> tuple[np.ndarray, np.ndarray]:
        """-> (landmarks (N, M, 2) in image px, confidence (N, M)). `rolls`: each face's crop turned by that many
        degrees (a face detector's estimate, prepare_faces). `recrop`: a second pass (passes.second_pass) on every
        face; None: on the tilted faces only; False: none, and no `tilt_at`. `tilt_at(image, box)`: a face
        detector's tilt of the face in a box, with its box there (FaceDetector.tilt_at: a passes.FaceTurn), asked
        about the faces the first pass is unsure of (passes.turn_unsure). `framed(index, rolls)`: the boxes of
        detected faces cropped at other turns (Detections.framed; with it, a face cropped at the detector's turn is
        cropped at the detector's box there); none: boxes sent, the same boxes at every turn."""
        return self.align(image_rgb, boxes, flip_test, recrop, rolls, tilt_at, framed)[:2]

    def align(self, image_rgb, boxes, flip_test: bool = False, recrop: bool | None = False, rolls=None,
              tilt_at=None, framed=None):
        """predict's passes with what they did to each face (passes.Aligned)."""
        boxes = validate_boxes(boxes)
        plan = face_passes(image_rgb, boxes, rolls, recrop, self.eye_indices, tilt_at, framed)
        return run_passes(plan, lambda b, r: self._predict_at(image_rgb, b, flip_test, r))

    def _predict_at(self, image_rgb, boxes, flip_test: bool, rolls=None) -> tuple[np.ndarray, np.ndarray]:
        batch, transforms = prepare_faces(image_rgb, boxes, self.input_size, rolls)
        if len(batch) == 0:
            return np.zeros((0, 0, 2)), np.zeros((0, 0), np.float32)
        heat = self.run(batch)
        flip_heat = None
        if flip_test:
            if self.flip_pairs is None:
                raise ValueError("flip_test needs flip_pairs (from the dataset or the model card)")
            flip_heat = self.run(flip_batch(batch))
        return heatmaps_to_landmarks(heat, transforms, flip_heat, self.flip_pairs, self.refine)
