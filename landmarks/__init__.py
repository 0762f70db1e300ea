"""The torch-free core that training and serving both stand on (numpy, OpenCV, ONNX Runtime): crop geometry, the
heatmap codec, the ONNX landmarker, metrics and scoring, occlusion, the face detector, and the dataset readers
with their registry. It imports nothing from trainer, service, worker or registry (tests/test_architecture.py)."""
