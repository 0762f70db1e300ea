"""`sdhrnet serve`: the REST API alone (uvicorn), against whatever registry and broker the environment names."""


def add_arguments(parser, command) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (0.0.0.0 in containers)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    parser.add_argument("--access-log", action=argparse_bool(), default=True, help="log every request")
    parser.add_argument("--register-default", action="store_true",
                        help="register the bundled default model first when the registry has none (containers)")


def argparse_bool():
    import argparse

    return argparse.BooleanOptionalAction


def main(args) -> int:
    import functools
    import logging

    import uvicorn

    from sdhrnet.settings import get_settings

    from .http_protocol import HeadTimeoutH11Protocol

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.register_default:
        from .cli_run import default_model_dir, register_default_model

        register_default_model(default_model_dir())
    # one process: the micro-batcher only batches requests that share a process, and ONNX Runtime
    # parallelises inside a batch; scale out with more containers instead of uvicorn workers
    settings = get_settings().service
    # h11 (not httptools) because it bounds the request head; slow clients meet the limits in ServiceSettings
    uvicorn.run("service.app:create_app", factory=True, host=args.host, port=args.port,
                log_level=args.log_level, access_log=args.access_log, timeout_graceful_shutdown=10,
                http=functools.partial(HeadTimeoutH11Protocol, head_timeout_s=settings.head_timeout_seconds),
                h11_max_incomplete_event_size=settings.max_head_bytes)
    return 0
