"""Request size limit as pure ASGI middleware: refuses early on Content-Length and counts streamed bodies."""
from starlette.exceptions import HTTPException

from .errors import problem_response


class BodyTooLarge(HTTPException):
    """An HTTPException so that FastAPI's body parsing re-raises it instead of turning it into a 400."""

    def __init__(self, max_bytes: int):
        super().__init__(413, f"the request body is larger than {max_bytes} bytes; send a smaller image (or split "
                              "the set) or raise SDHRNET_MAX_REQUEST_BYTES / SDHRNET_MAX_ARCHIVE_BYTES on the server")


class MaxBodySizeMiddleware:
    """`archive_paths` get `max_archive_bytes` for multipart bodies (dataset archives), everything else
    `max_bytes`."""

    def __init__(self, app, max_bytes: int, max_archive_bytes: int | None = None, archive_paths=("/evaluate",)):
        self.app = app
        self.max_bytes = max_bytes
        self.max_archive_bytes = max_archive_bytes or max_bytes
        self.archive_paths = frozenset(archive_paths)

    def _limit_for(self, scope) -> int:
        if scope.get("path") in self.archive_paths:
            for name, value in scope.get("headers", ()):
                if name == b"content-type" and value.lower().startswith(b"multipart/form-data"):
                    return self.max_archive_bytes
        return self.max_bytes

    @staticmethod
    def _too_large(limit: int):
        exc = BodyTooLarge(limit)
        return problem_response(413, exc.detail)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self._limit_for(scope)
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    too_big = int(value) > limit
                except ValueError:
                    too_big = False
                if too_big:
                    return await self._too_large(limit)(scope, receive, send)
        received = 0
        started = False

        async def counting_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._too_large(limit)(scope, receive, send)
