"""Prometheus metrics. One CollectorRegistry per app so that several apps (tests) do not collide."""
import time

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from landmarks.face_detector import MAX_TILES

from .route_table import lookup

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
FACES_BUCKETS = (0, 1, 2, 4, 8, 16, 32)
LOOKS_BUCKETS = (1, 4, 8, 16, 32, 1 + MAX_TILES)
# any token is a valid HTTP method, so a label per method sent would let a client add series without end
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class ServiceMetrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Counter("sdhrnet_http_requests_total", "HTTP requests by route, method and status",
                                ["route", "method", "status"], registry=self.registry)
        self.latency = Histogram("sdhrnet_http_request_duration_seconds", "HTTP latency by route, method and status",
                                 ["route", "method", "status"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.faces = Counter("sdhrnet_faces_aligned_total", "faces whose landmarks were returned", ["dataset"],
                             registry=self.registry)
        self.detection_seconds = Histogram("sdhrnet_face_detection_seconds",
                                           "face detection time per image (requests without boxes)",
                                           buckets=LATENCY_BUCKETS, registry=self.registry)
        self.faces_per_image = Histogram("sdhrnet_faces_detected_per_image", "faces found per image by detection",
                                         buckets=FACES_BUCKETS, registry=self.registry)
        self.detection_looks = Histogram("sdhrnet_face_detection_looks", "detector runs per image: the whole photo, "
                                         "plus the tiles that small_faces asks for", buckets=LOOKS_BUCKETS,
                                         registry=self.registry)
        self.not_faces = Counter("sdhrnet_face_detection_not_faces_total", "detections that only small_faces' tiles "
                                 "found and the landmark network saw no face in, left out of the answer",
                                 registry=self.registry)
        self.batch_size = Histogram("sdhrnet_inference_batch_size", "faces per ONNX Runtime call", ["dataset"],
                                    buckets=BATCH_BUCKETS, registry=self.registry)
        self.model_info = Gauge("sdhrnet_model_loaded", "1 for the model version currently served per dataset",
                                ["dataset", "name", "version", "run_id"], registry=self.registry)
        self.model_swaps = Counter("sdhrnet_model_swaps_total", "champion versions loaded after start-up",
                                   ["dataset"], registry=self.registry)

    def set_loaded(self, dataset: str, name: str, version: str, run_id: str, previous=None) -> None:
        if previous is not None:
            try:
                self.model_info.remove(*previous)
            except KeyError:
                pass
        self.model_info.labels(dataset, name, version, run_id).set(1)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def _route_template(scope) -> str:
    route = scope.get("route")
    if route is not None and getattr(route, "path", None):
        return route.path
    # answered before routing (e.g. 413 from the size limit): label it with the route it was meant for
    app = scope.get("app")
    found = lookup(app, scope.get("path", ""), scope.get("method", "GET")) if app is not None else None
    return found[0] if found else "unmatched"


class MetricsMiddleware:
    """Labels by route template (/jobs/{job_id}), never by raw path, and by known methods only, to keep cardinality
    bounded."""

    def __init__(self, app, metrics: ServiceMetrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        status = {"code": 500}

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            template = _route_template(scope)
            method = scope.get("method", "")
            labels = (template, method if method in METHODS else "other", str(status["code"]))
            self.metrics.requests.labels(*labels).inc()
            self.metrics.latency.labels(*labels).observe(time.perf_counter() - start)
