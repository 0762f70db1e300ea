"""Tilted faces: the roll of a face from its points, crops that turn with it, the second pass that turns a tilted
face upright, the face detector's tilt from its eye keypoints, and its look at a box for a face the first pass is
unsure of (landmarks.geometry, landmarks.landmarker, landmarks.face_detector)."""
import numpy as np
import pytest

from landmarks import geometry as g
from landmarks.datasets import get_info
from landmarks.landmarker import prepare_faces
from landmarks.passes import (TILTED, UPSIDE_DOWN_FLOOR, UPSIDE_DOWN_MARGIN, FaceTurn, crop_rolls, merge_passes,
                              second_pass, turn_unsure)

EYES = get_info("300w").norm_indices


def upright_face(centre=(120.0, 90.0), seed=0) -> np.ndarray:
    """68 points shaped like a face: the outer eye corners level, the rest mostly below them."""
    rng = np.random.default_rng(seed)
    pts = np.column_stack([rng.uniform(-40, 40, 68), rng.uniform(-10, 60, 68)])
    pts[EYES[0]], pts[EYES[1]] = (-30, 0), (30, 0)
    return pts + centre


def turned(points: np.ndarray, degrees: float, about) -> np.ndarray:
    return g.turn_points(points, degrees, about)


@pytest.mark.parametrize("degrees", [-170, -90, -45, -10, 0, 10, 45, 90, 135, 180])
def test_face_roll_is_the_turn_of_the_eye_line_whichever_eye_comes_first(degrees):
    pts = turned(upright_face(), degrees, np.array([100.0, 100.0]))
    assert g.face_roll(pts, EYES) == pytest.approx(degrees, abs=1e-9)
    assert g.face_roll(pts, EYES[::-1]) == pytest.approx(degrees, abs=1e-9), "the centroid settles the side"


@pytest.mark.parametrize("degrees", [0, 30, -65, 120])
def test_a_crop_turned_with_the_face_sees_it_as_the_upright_crop_does(degrees):
    face = upright_face()
    tilted = turned(face, degrees, np.array([60.0, 200.0]))
    box, tilted_box = g.landmark_box(face), g.upright_box(tilted, degrees)
    np.testing.assert_allclose(tilted_box[2:] - tilted_box[:2], box[2:] - box[:2], atol=1e-9)
    upright = g.crop_matrix(*g.box_to_center_scale(box), 128)
    turned_crop = g.crop_matrix(*g.box_to_center_scale(tilted_box), 128, rotation=degrees)
    np.testing.assert_allclose(g.transform_points(tilted, turned_crop), g.transform_points(face, upright), atol=1e-9)


def test_turn_image_moves_pixels_with_the_points():
    image = np.zeros((60, 90, 3), np.uint8)
    image[10, 70] = 255
    for degrees in (0, 33, 90, -120):
        out, m = g.turn_image(image, degrees)
        x, y = np.rint(g.transform_points([[70.0, 10.0]], m)[0]).astype(int)
        assert out[y, x].max() > 60, f"the marked pixel moved elsewhere at {degrees} degrees"
        assert out.shape[0] >= 59 and out.shape[1] >= 59


def test_prepare_faces_turns_each_crop_by_its_roll():
    image = np.random.default_rng(0).integers(0, 256, (200, 240, 3), dtype=np.uint8)
    boxes = np.array([[40.0, 30.0, 140.0, 130.0], [100.0, 60.0, 180.0, 150.0]])
    upright, _ = prepare_faces(image, boxes, 64)
    same, _ = prepare_faces(image, boxes, 64, rolls=[0, 0])
    np.testing.assert_array_equal(same, upright)
    rolled, transforms = prepare_faces(image, boxes, 64, rolls=[0, 90])
    np.testing.assert_array_equal(rolled[0], upright[0])
    assert not np.array_equal(rolled[1], upright[1])
    np.testing.assert_allclose(transforms[1][:, :2] / np.linalg.norm(transforms[1][0, :2]), [[0, 1], [-1, 0]],
                               atol=1e-12)
    with pytest.raises(ValueError, match="rolls"):
        prepare_faces(image, boxes, 64, rolls=[0])
    with pytest.raises(ValueError, match="rolls"):
        prepare_faces(image, boxes, 64, rolls=[0, np.nan])


def test_second_pass_turns_only_tilted_faces_upright():
    level, tilted = upright_face(), turned(upright_face(seed=1), 35, np.array([300.0, 200.0]))
    slight = turned(upright_face(seed=2), TILTED / 2, np.array([0.0, 0.0]))
    boxes = np.array([g.landmark_box(p) for p in (level, tilted, slight)])
    plan = second_pass([level, tilted, slight], boxes, EYES)
    assert plan.index.tolist() == [0, 1, 2] and plan.tilted.tolist() == [False, True, False]
    assert plan.rolls[1] == pytest.approx(35) and plan.rolls[0] == plan.rolls[2] == 0
    np.testing.assert_allclose(plan.boxes[[0, 2]], boxes[[0, 2]], atol=1e-9)
    np.testing.assert_allclose(plan.boxes[1], g.upright_box(tilted, 35))
    only = second_pass([level, tilted, slight], boxes, EYES, every=False)
    assert only.index.tolist() == [1] and only.tilted.tolist() == [True]
    assert not second_pass([tilted], boxes[1:2]).tilted.any(), "without eye corners every crop stays upright"
    kept = second_pass([tilted, np.full((68, 2), np.nan)], np.tile(boxes[1], (2, 1)), rolls=[33.0, 33.0])
    assert kept.rolls.tolist() == [33.0, 33.0] and not kept.tilted.any(), "...or keeps the first crop's turn"
    np.testing.assert_allclose(kept.boxes, [g.upright_box(tilted, 33.0), boxes[1]])


def test_merge_passes_averages_replaces_tilted_faces_and_keeps_the_rest():
    first = (np.zeros((3, 2, 2)), np.zeros((3, 2), np.float32))
    second = (np.ones((2, 2, 2)) * [[[2.0]], [[4.0]]], np.ones((2, 2), np.float32))
    plan = second_pass([upright_face(), turned(upright_face(), 40, np.zeros(2)), upright_face()],
                       np.tile([0.0, 0.0, 300.0, 300.0], (3, 1)), EYES)
    plan = type(plan)(plan.index[:2], plan.boxes[:2], plan.rolls[:2], plan.tilted[:2])  # face 2: no second pass
    points, confidence = merge_passes(first, second, plan)
    assert points[:, 0, 0].tolist() == [1.0, 4.0, 0.0]
    assert confidence[:, 0].tolist() == [0.5, 1.0, 0.0] and confidence.dtype == np.float32


def test_angle_difference_goes_the_short_way_round():
    assert g.angle_difference(170, -170) == pytest.approx(20)
    assert g.angle_difference(-90, 90) == pytest.approx(180)
    np.testing.assert_allclose(g.angle_difference([0, 359, 45], 0), [0, 1, 45])


def test_turn_unsure_asks_the_detector_only_about_unsure_faces_and_turns_where_it_disagrees():
    """Faces 1-5 are the unsure ones: only they are asked. 1 is found turned 70 degrees while its points say 5
    (cropped again at 70, in doubt); 2 is found turned 60 as its points say (cropped again at 60, but beyond FAR_TURN
    both may be wrong alike: in doubt); 3 is found nowhere (tried upside down, in doubt); 4 is found upright in an
    upright crop and 5 turned 30 as its points say (the second pass turns it): both may be upside down, so each is
    tried turned by 180 from its crop, and is not in doubt."""
    points = [upright_face(seed=i) for i in range(6)]
    points[1] = turned(points[1], 5, points[1].mean(0))
    points[2] = turned(points[2], 62, points[2].mean(0))
    points[5] = turned(points[5], 33, points[5].mean(0))
    boxes = np.array([[i * 100.0, 0.0, i * 100.0 + 80, 90.0] for i in range(6)])
    found = {1: 70.0, 2: 60.0, 3: None, 4: 8.0, 5: 30.0}
    asked = []

    def tilt_at(image, box):
        face = int(box[0] // 100)
        asked.append(face)
        return None if found.get(face) is None else FaceTurn(found[face], np.array([1.0, 2.0, 3.0, 4.0]) * face)

    first, unsure = (np.stack(points), None), np.arange(1, 6)
    index, rolls, flipped, doubtful, seen = turn_unsure(None, boxes, np.zeros(6), first, EYES, tilt_at, unsure)
    assert asked == [1, 2, 3, 4, 5] and doubtful.tolist() == [1, 2, 3]
    # the detector's box of a face goes with the turn it gave; the upside-down tries have none
    np.testing.assert_array_equal(seen[:2], [[1.0, 2.0, 3.0, 4.0], [2.0, 4.0, 6.0, 8.0]])
    assert np.isnan(seen[2:]).all()
    assert flipped.tolist() == [False, False, True, True, True]
    assert index.tolist() == [1, 2, 3, 4, 5] and rolls.tolist() == [70.0, 60.0, -180.0, -180.0, -180.0]
    index, rolls, _, doubtful, _ = turn_unsure(None, boxes, np.array([0, 70.0, 60.0, 0, 0, 0]), first, EYES,
                                               tilt_at, unsure)
    assert 2 not in index and doubtful.tolist() == [2, 3], "a face cropped at the agreed far turn stays in doubt"
    assert index.tolist() == [1, 3, 4, 5] and rolls.tolist() == [-110.0, -180.0, -180.0, -180.0], \
        "a face already cropped at the detector's turn is tried upside down from there"
    index, rolls, _, doubtful, _ = turn_unsure(None, boxes, np.zeros(6), first, None, tilt_at, unsure)
    assert index.tolist() == [1, 2, 3, 4, 5] and rolls.tolist() == [70.0, 60.0, -180.0, -180.0, 30.0], \
        "without eye corners the points cannot agree with the detector"
    assert doubtful.tolist() == [1, 2, 3, 5]


def test_a_face_still_unsure_after_the_detectors_turn_gets_the_crop_the_network_is_surest_of():
    """A stand-in network sure (0.9) only of crops turned within 15 degrees of 90, a little surer of crops turned
    within 60 (0.5) than of the rest (0.4). The detector points the wrong way: the crop it turns by (-80) stays
    unsure, so the first crop stands and the others around it are tried: 90 stands."""
    from landmarks.passes import OTHER_TURNS, face_passes, run_passes

    asked = []

    def run(boxes, rolls):
        asked.append(np.round(rolls, 6).tolist())
        off = g.angle_difference(rolls, 90.0)
        confidence = np.where(off < 15, 0.9, np.where(off < 60, 0.5, 0.4))[:, None] * np.ones((len(rolls), 68))
        return np.repeat(rolls[:, None, None], 68, axis=1) * np.ones(2), confidence

    box = np.array([[10.0, 10.0, 110.0, 110.0]])
    done = run_passes(face_passes(None, box, None, None, None, lambda image, b: FaceTurn(-80.0)), run)
    assert asked == [[0.0], [-80.0], [((t + 180) % 360) - 180 for t in OTHER_TURNS]]
    assert done.rolls.tolist() == [90.0] and done.passes.tolist() == [3]
    assert done.landmarks[0, 0, 0] == 90.0 and done.confidence[0, 0] == pytest.approx(0.9)
    asked.clear()
    surer = run_passes(face_passes(None, box, None, None, None, lambda image, b: FaceTurn(40.0)), run)
    assert asked[1] == [40.0] and asked[2][0] == 85.0 and surer.rolls.tolist() == [85.0], \
        "the detector's turn stands where the network is surer of it, and the others are tried around it"
    asked.clear()
    sure = run_passes(face_passes(None, box, [90.0], None, None, lambda image, b: FaceTurn(-80.0)), run)
    assert asked == [[90.0]] and sure.passes.tolist() == [1], "a face the network is sure of is left alone"
    asked.clear()
    run_passes(face_passes(None, box, None, False, None, lambda image, b: FaceTurn(-80.0)), run)
    assert asked == [[0.0]], "recrop=false: one pass, no detector"


@pytest.mark.parametrize("sure_at, expected, stands", [
    (60.0, [[0.0], [60.0], [60.0]], 60.0),
    (-130.0, [[0.0], [60.0], [45.0, 90.0, 135.0, -180.0, -135.0, -90.0, -45.0], [60.0]], -135.0)])
def test_a_face_whose_points_and_detector_agree_on_a_far_turn_is_cropped_there_before_other_turns(sure_at, expected,
                                                                                                    stands):
    """The points of an unsure first crop and the detector agree on 60 degrees. The face is cropped at 60 first;
    where the network is sure of that crop no other turn is tried; where it is sure only near -130 (about upside
    down from there: both were wrong alike), the other turns around the first crop find it. The stand-in network
    answers a face turned by 60, so the second pass turns by 60."""
    from landmarks.passes import face_passes, run_passes

    box = np.array([[10.0, 10.0, 110.0, 110.0]])
    points = turned(upright_face(centre=(60.0, 40.0)), 60.0, np.array([60.0, 60.0]))
    asked = []

    def run(boxes, rolls):
        asked.append(np.round(rolls, 6).tolist())
        sure = np.where(g.angle_difference(rolls, sure_at) < 15, 0.9, 0.4)
        return np.repeat(points[None], len(rolls), axis=0), sure[:, None] * np.ones((len(rolls), 68))

    done = run_passes(face_passes(None, box, None, None, EYES, lambda image, b: FaceTurn(60.0)), run)
    assert asked[:-1] == expected[:-1] and asked[-1][0] == pytest.approx(60.0)
    assert done.rolls.tolist() == [stands]


def test_an_unsure_face_that_the_detector_leaves_upright_is_tried_upside_down():
    """BlazeFace takes an upside-down face for upright: the detector keeps the crop's turn and the first pass is
    unsure. The crop turned by 180 stands where the stand-in network is surer of it by UPSIDE_DOWN_MARGIN and at
    least UPSIDE_DOWN_FLOOR sure, and the second pass turns by its points; where it is not, the face keeps its crop
    and is tried at no other turn."""
    from landmarks.passes import face_passes, run_passes

    box = np.array([[10.0, 10.0, 110.0, 110.0]])
    asked = []

    def network(sure_at, confidence=0.9, otherwise=0.5):
        def run(boxes, rolls):
            asked.append(np.round(rolls, 6).tolist())
            sure = np.where(g.angle_difference(rolls, sure_at) < 15, confidence, otherwise)
            points = [turned(upright_face(centre=(60.0, 40.0)), r, np.array([60.0, 60.0])) for r in rolls]
            return np.stack(points), sure[:, None] * np.ones((len(rolls), 68))
        return run

    done = run_passes(face_passes(None, box, None, None, EYES, lambda image, b: FaceTurn(3.0)), network(180.0))
    assert asked[:2] == [[0.0], [-180.0]] and len(asked) == 3 and abs(asked[2][0]) == pytest.approx(180.0)
    assert done.rolls.tolist() == [-180.0] and done.passes.tolist() == [3]
    for first, upside_down in ((0.5, 0.5), (0.5, 0.5 + UPSIDE_DOWN_MARGIN - 0.01), (0.3, UPSIDE_DOWN_FLOOR - 0.01)):
        asked.clear()
        kept = run_passes(face_passes(None, box, None, None, EYES, lambda image, b: FaceTurn(3.0)),
                          network(180.0, upside_down, first))
        assert asked == [[0.0], [-180.0]] and kept.rolls.tolist() == [0.0] and kept.passes.tolist() == [2], \
            "not surer of the crop turned by 180 by UPSIDE_DOWN_MARGIN, or under UPSIDE_DOWN_FLOOR: it keeps its crop"


def test_weighted_nms_blends_keypoint_columns_with_their_boxes():
    from landmarks.face_detector import weighted_nms

    rows = np.array([[0, 0, 10, 10, 2, 3], [1, 1, 11, 11, 4, 5], [50, 50, 60, 60, 7, 7]], float)
    kept, scores = weighted_nms(rows, np.array([0.6, 0.2, 0.9]))
    assert kept.shape == (2, 6) and scores.tolist() == [0.9, 0.6]
    np.testing.assert_allclose(kept[1], [0.25, 0.25, 10.25, 10.25, 2.5, 3.5])


def test_box_mapping_offset_follows_the_roll():
    from landmarks.face_detector import BoxMapping

    mapping = BoxMapping(offset_x=0.0, offset_y=0.2, scale_w=1.0, scale_h=1.2)
    box = np.array([[0.0, 0.0, 100.0, 100.0]])
    np.testing.assert_allclose(mapping.apply(box, [0.0]), mapping.apply(box))
    turned_box = mapping.apply(box, [90.0])[0]
    # the face's "down" points left on screen when it is turned 90 degrees clockwise
    np.testing.assert_allclose((turned_box[:2] + turned_box[2:]) / 2, [30.0, 50.0], atol=1e-9)
    np.testing.assert_allclose(turned_box[2:] - turned_box[:2], [100.0, 120.0])


def test_detections_frame_a_face_at_another_turn_with_the_mapping_offset_turned():
    from landmarks.face_detector import BoxMapping, Detections

    mapping = BoxMapping(offset_x=0.0, offset_y=0.2, scale_w=1.0, scale_h=1.2)
    raw = np.array([[0.0, 0.0, 100.0, 100.0], [200.0, 0.0, 300.0, 100.0]])
    tilts = np.array([5.0, -40.0])
    found = Detections(mapping.apply(raw, [0.0, -40.0]), raw, np.array([0.9, 0.8]), tilts, mapping)
    np.testing.assert_allclose(found.framed([0, 1], found.rolls), found.boxes)
    one = found[[1]]
    assert one.mapping is mapping and one.tilts.tolist() == [-40.0] and one.scores.tolist() == [0.8]
    np.testing.assert_allclose(one.framed([0], [90.0]), mapping.apply(raw[[1]], [90.0]))
    assert not np.allclose(one.framed([0], [90.0]), one.boxes), "the offset turns with the crop"
    bare = Detections(found.boxes, raw, found.scores)
    np.testing.assert_allclose(bare.framed([1, 1], [0.0, 90.0]), found.boxes[[1, 1]], err_msg="no mapping: boxes stay")


def test_a_face_cropped_at_another_turn_is_framed_for_that_turn():
    """The detector's turn (-80) leaves a stand-in network unsure; of the other turns, 90 stands. Each try is cropped
    at the box `framed` gives for its turn, and the answer keeps the winning try's box."""
    from landmarks.passes import OTHER_TURNS, face_passes, run_passes

    box = np.array([[10.0, 10.0, 110.0, 110.0]])
    asked = []

    def framed(index, rolls):
        return box[np.zeros(len(index), int)] + np.asarray(rolls)[:, None]  # a box that moves with the turn

    def run(boxes, rolls):
        asked.append((boxes.copy(), np.asarray(rolls).copy()))
        sure = np.where(g.angle_difference(rolls, 90.0) < 15, 0.9, 0.4)
        return np.zeros((len(rolls), 68, 2)) + 50.0, sure[:, None] * np.ones((len(rolls), 68))

    done = run_passes(face_passes(None, box, None, None, None, lambda image, b: FaceTurn(-80.0), framed), run)
    np.testing.assert_allclose(asked[0][0], box, err_msg="the first pass is at the box given")
    for boxes, rolls in asked[1:3]:
        np.testing.assert_allclose(boxes, box + rolls[:, None])
    assert len(asked[2][1]) == len(OTHER_TURNS) and done.rolls.tolist() == [90.0]
    np.testing.assert_allclose(done.boxes, box + 90.0)
    kept = run_passes(face_passes(None, box, None, None, None, lambda image, b: FaceTurn(-80.0)), run)
    np.testing.assert_allclose(kept.boxes, box, err_msg="without framed a face keeps its box at every turn")
    # where the detector saw the face at its turn, a detected face's try there is cropped at the detector's box of it;
    # a box sent stays as sent
    seen = np.array([20.0, 30.0, 140.0, 150.0])
    asked.clear()
    run_passes(face_passes(None, box, None, None, None, lambda image, b: FaceTurn(-80.0, seen), framed), run)
    np.testing.assert_allclose(asked[1][0], seen[None])
    np.testing.assert_allclose(asked[2][0], box + asked[2][1][:, None], err_msg="the other turns: framed as before")
    asked.clear()
    run_passes(face_passes(None, box, None, None, None, lambda image, b: FaceTurn(-80.0, seen)), run)
    np.testing.assert_allclose(asked[1][0], box)


# --- on real faces (the bundled model and detector) ----------------------------------------------------------------

@pytest.fixture(scope="module")
def dev_faces(shared_data):
    from landmarks.datasets import load_samples

    return load_samples("300w", shared_data / "300w", "dev")[::11]


def test_faces_turned_45_degrees_are_found_turned_and_aligned(dev_faces):
    """The detector's eye keypoints give each face's tilt; the crops turned by it land the points about as well as
    on the upright photo, where upright crops fail on many faces."""
    import json

    from landmarks import metrics
    from landmarks.datasets.base import load_image
    from landmarks.face_detector import FaceDetector, match_faces
    from landmarks.landmarker import OnnxLandmarker
    from tests.test_default_model import MODEL

    card = json.loads((MODEL / "model_card.json").read_text())
    info, detector = get_info("300w"), FaceDetector()
    landmarker = {eyes: OnnxLandmarker(MODEL / "model.onnx", card["input_size"], eye_indices=eyes)
                  for eyes in (None, EYES)}
    nme = {"upright photo": [], "upright crops": [], "turned crops": []}
    for s in dev_faces:
        image, m = g.turn_image(load_image(s), 45)
        truth = g.transform_points(s.landmarks, m)
        found = detector.detect(image)
        match = match_faces(found.boxes, g.landmark_box(truth)[None], min_iou=0.3)[0]
        assert match is not None, f"{s.sample_id}: no face found at 45 degrees"
        assert abs(found.rolls[match] - g.face_roll(truth, EYES)) < 12
        upright_box = detector.mapping.apply(found.detector_boxes[[match]])  # as the service cropped before
        for name, points in (("upright crops", landmarker[None].predict(image, upright_box, recrop=True)[0]),
                             ("turned crops", landmarker[EYES].predict(image, found.boxes[[match]], recrop=True,
                                                                       rolls=found.rolls[[match]])[0])):
            nme[name].append(metrics.nme_per_image(points, truth[None], info)[0])
        nme["upright photo"].append(metrics.nme_per_image(
            landmarker[EYES].predict(load_image(s), s.box[None])[0], s.landmarks[None], info)[0])
    mean = {k: float(np.mean(v)) for k, v in nme.items()}
    assert mean["turned crops"] < 1.25 * mean["upright photo"], mean
    assert mean["turned crops"] < 0.7 * mean["upright crops"], mean


@pytest.mark.parametrize("degrees", [70, -90])
def test_a_box_sent_for_a_face_turned_far_gets_the_detectors_tilt(dev_faces, degrees):
    """At the tight box of a face turned by 70 or 90 degrees the first pass's points cannot tell the tilt; the
    detector's look at the box can, and the crops turned by it land the points about as well as on the upright
    photo, face by face."""
    import json

    from landmarks import metrics
    from landmarks.datasets.base import load_image
    from landmarks.face_detector import FaceDetector
    from landmarks.landmarker import OnnxLandmarker
    from tests.test_default_model import MODEL

    card = json.loads((MODEL / "model_card.json").read_text())
    info, detector = get_info("300w"), FaceDetector()
    landmarker = OnnxLandmarker(MODEL / "model.onnx", card["input_size"], eye_indices=EYES)
    nme, errors = {"points only": [], "detector asked": [], "upright photo": []}, []
    for s in dev_faces:
        image, m = g.turn_image(load_image(s), degrees)
        truth = g.transform_points(s.landmarks, m)
        box = g.landmark_box(truth)[None]
        turn = detector.tilt_at(image, box[0])
        assert turn is not None, f"{s.sample_id}: no face found in its box at {degrees} degrees"
        errors.append(float(g.angle_difference(turn.tilt, g.face_roll(truth, EYES))))
        for name, tilt_at in (("points only", None), ("detector asked", detector.tilt_at)):
            points, _ = landmarker.predict(image, box, recrop=None, tilt_at=tilt_at)
            nme[name].append(metrics.nme_per_image(points, truth[None], info)[0])
        nme["upright photo"].append(metrics.nme_per_image(
            landmarker.predict(load_image(s), s.box[None])[0], s.landmarks[None], info)[0])
    median = {k: float(np.median(v)) for k, v in nme.items()}
    assert np.median(errors) < 10, errors
    assert median["detector asked"] < 1.25 * median["upright photo"], median
    assert median["detector asked"] < 0.5 * median["points only"], median
    # near 90 degrees a face whose points and detector both take it for upright stays wrong: one in ten at most
    landed = np.asarray(nme["detector asked"]) < 2 * np.asarray(nme["upright photo"])
    assert landed.sum() >= len(landed) - 1, nme


def test_a_box_sent_for_an_upside_down_face_gets_the_crop_turned_by_180(dev_faces):
    """Upside down, BlazeFace takes a face for upright (or finds none) and the first pass is unsure: the crop turned
    by 180 degrees is the surer one and lands the points about as well as on the upright photo."""
    import json

    from landmarks import metrics
    from landmarks.datasets.base import load_image
    from landmarks.face_detector import FaceDetector
    from landmarks.landmarker import OnnxLandmarker
    from tests.test_default_model import MODEL

    card = json.loads((MODEL / "model_card.json").read_text())
    info, detector = get_info("300w"), FaceDetector()
    landmarker = OnnxLandmarker(MODEL / "model.onnx", card["input_size"], eye_indices=EYES)
    nme = {"detector asked": [], "points only": [], "upright photo": []}
    for s in dev_faces:
        image, m = g.turn_image(load_image(s), 180)
        truth = g.transform_points(s.landmarks, m)
        box = g.landmark_box(truth)[None]
        for name, tilt_at in (("points only", None), ("detector asked", detector.tilt_at)):
            nme[name].append(metrics.nme_per_image(landmarker.predict(image, box, recrop=None, tilt_at=tilt_at)[0],
                                                   truth[None], info)[0])
        nme["upright photo"].append(metrics.nme_per_image(
            landmarker.predict(load_image(s), s.box[None])[0], s.landmarks[None], info)[0])
    median = {k: float(np.median(v)) for k, v in nme.items()}
    assert median["detector asked"] < 1.25 * median["upright photo"], median
    assert median["points only"] > 5 * median["detector asked"], median


@pytest.mark.parametrize("degrees", [0, 30, 120, 150, 180, -150])
def test_the_detector_tells_a_face_upside_down_from_upright_at_its_box(dev_faces, degrees):
    """BlazeFace takes an upside-down face for an upright one, but scores it higher the right way up: tilt_at looks
    both ways and gives the tilt within a few degrees at any turn, with the face's box at that turn."""
    from landmarks.datasets.base import load_image
    from landmarks.face_detector import FaceDetector

    detector, errors, overlaps = FaceDetector(), [], []
    for s in dev_faces:
        image, m = g.turn_image(load_image(s), degrees)
        truth = g.transform_points(s.landmarks, m)
        turn = detector.tilt_at(image, g.landmark_box(truth))
        assert turn is not None, s.sample_id
        errors.append(float(g.angle_difference(turn.tilt, g.face_roll(truth, EYES))))
        # the box is the face's box in its own frame at the turn: about the true points' box in that frame
        overlaps.append(_frame_iou(turn.box, truth, float(crop_rolls(turn.tilt))))
    # one face in ten at most is taken the wrong way up (bench/rotation.py: tilt error at the true box)
    assert sum(e > 20 for e in errors) <= 1 and np.median(errors) < 6, errors
    assert np.median(overlaps) > 0.6, overlaps


def test_detected_faces_upside_down_land_as_upright_ones(dev_faces):
    """A face turned by 150 degrees: the whole photo's look takes it for upright and boxes it badly; the detector's
    look at it turned the right way up gives the turn and the box, so the crop at that turn lands the points about as
    well as on the upright photo (/align without boxes: second pass, the detector asked)."""
    import json

    from landmarks import metrics
    from landmarks.datasets.base import load_image
    from landmarks.face_detector import FaceDetector, match_faces
    from landmarks.landmarker import OnnxLandmarker
    from tests.test_default_model import MODEL

    card = json.loads((MODEL / "model_card.json").read_text())
    info, detector = get_info("300w"), FaceDetector()
    landmarker = OnnxLandmarker(MODEL / "model.onnx", card["input_size"], eye_indices=EYES)
    nme, upright = [], []
    for s in dev_faces:
        image, m = g.turn_image(load_image(s), 150)
        truth = g.transform_points(s.landmarks, m)
        found = detector.detect(image)
        match = match_faces(found.boxes, g.landmark_box(truth)[None], min_iou=0.3)[0]
        if match is None:
            continue
        face = found[[match]]
        done = landmarker.align(image, face.boxes, recrop=True, rolls=face.rolls, tilt_at=detector.tilt_at,
                                framed=face.framed)
        nme.append(metrics.nme_per_image(done.landmarks, truth[None], info)[0])
        upright.append(metrics.nme_per_image(landmarker.predict(load_image(s), s.box[None])[0], s.landmarks[None],
                                             info)[0])
    assert len(nme) >= 0.8 * len(dev_faces)
    assert max(nme) < 0.1 and np.mean(nme) < 1.25 * np.mean(upright), (nme, upright)


def _frame_iou(box, points, degrees) -> float:
    """IoU of a box in a face's own frame turned by `degrees` with the box of the points in that frame."""
    from landmarks.face_detector import box_iou

    truth = g.landmark_box(g.turn_points(points, -degrees, (np.asarray(box[:2]) + np.asarray(box[2:])) / 2))
    return float(box_iou(np.asarray(box), truth[None])[0])


def test_tilt_at_a_box_without_a_face_is_none():
    from landmarks.face_detector import FaceDetector

    assert FaceDetector().tilt_at(np.zeros((200, 200, 3), np.uint8), np.array([50.0, 50.0, 150.0, 150.0])) is None


# Dev faces whose detected box at 90 degrees came with eye keypoints off by 60 degrees or more (bench/rotation.py): the
# box mapped at that wrong turn put every other turn's crop off the face until the box followed the turn
KEYPOINTS_FAR_OFF_AT_90 = ("helen/trainset/130893906_1.jpg", "helen/trainset/13970241_1.jpg",
                   "helen/trainset/2070105355_2.jpg", "helen/trainset/2201942026_1.jpg")


def test_a_detected_face_whose_detector_tilt_is_far_off_is_framed_at_the_turn_that_stands(shared_data, monkeypatch):
    """(The look at the photo upside down, which these faces' low scores ask for, gets their tilt right: it is left out
    here, as for faces the detector is sure of.)"""
    import json

    from landmarks import face_detector, metrics
    from landmarks.datasets import load_samples
    from landmarks.datasets.base import load_image
    from landmarks.face_detector import FaceDetector, match_faces
    from landmarks.landmarker import OnnxLandmarker
    from tests.test_default_model import MODEL

    monkeypatch.setattr(face_detector, "UNSURE_SCORE", 0.0)
    card = json.loads((MODEL / "model_card.json").read_text())
    info, detector = get_info("300w"), FaceDetector()
    landmarker = OnnxLandmarker(MODEL / "model.onnx", card["input_size"], eye_indices=EYES)
    samples = [s for s in load_samples("300w", shared_data / "300w", "dev") if s.sample_id in KEYPOINTS_FAR_OFF_AT_90]
    assert len(samples) == len(KEYPOINTS_FAR_OFF_AT_90)
    for s in samples:
        image, m = g.turn_image(load_image(s), 90)
        truth = g.transform_points(s.landmarks, m)
        found = detector.detect(image)
        match = match_faces(found.boxes, g.landmark_box(truth)[None], min_iou=0.3)[0]
        face = found[[match]]
        assert g.angle_difference(face.tilts[0], g.face_roll(truth, EYES)) > 45, "the keypoints are far off"
        done = landmarker.align(image, face.boxes, recrop=True, rolls=face.rolls, tilt_at=detector.tilt_at,
                                framed=face.framed)
        upright = landmarker.predict(load_image(s), s.box[None])[0]
        nme = {name: metrics.nme_per_image(points, pts_truth[None], info)[0] for name, points, pts_truth in
               (("framed", done.landmarks, truth), ("upright photo", upright, s.landmarks))}
        assert g.angle_difference(done.rolls[0], g.face_roll(truth, EYES)) < 25, (s.sample_id, done.rolls)
        assert nme["framed"] < 1.5 * nme["upright photo"], (s.sample_id, nme)
