"""Request limits as pure ASGI middleware: the size of the head (431), the size of the body (413: refused early
on Content-Length, streamed bodies counted) and its pace (a body that stalls longer than the idle limit
between two chunks, as a slow client that would hold the connection for ever, gets a 408)."""
import asyncio

from starlette.exceptions import HTTPException

from .errors import problem_response


class BodyTooLarge(HTTPException):
    """An HTTPException so that FastAPI's body parsing re-raises it instead of turning it into a 400."""

    def __init__(self, max_bytes: int, setting: str = "SDHRNET_MAX_REQUEST_BYTES"):
        what = "split the set" if setting == "SDHRNET_MAX_ARCHIVE_BYTES" else "send a smaller image or fewer items"
        super().__init__(413, f"the request body is larger than {max_bytes} bytes; {what}, or raise {setting} on "
                              "the server")


class BodyStalled(HTTPException):
    def __init__(self, idle_s: float):
        # closing: the rest of the stalled body must not be read as the next request
        super().__init__(408, f"the request body stalled: nothing arrived for {idle_s:g} s; send the body without "
                              "pauses (a slow but steady upload is fine)", headers={"Connection": "close"})


class RequestLimitsMiddleware:
    """`archive_paths` get `max_archive_bytes` for multipart bodies (dataset archives), everything else
    `max_bytes`. `body_idle_s`: the longest wait for the next chunk of a body. `max_header_bytes`: the header
    fields together (the HTTP server bounds a whole head still arriving, see service.cli_serve)."""

    def __init__(self, app, max_bytes: int, max_archive_bytes: int | None = None, archive_paths=("/evaluate",),
                 body_idle_s: float | None = None, max_header_bytes: int | None = None):
        self.app = app
        self.body_idle_s = body_idle_s
        self.max_header_bytes = max_header_bytes
        self.max_bytes = max_bytes
        self.max_archive_bytes = max_archive_bytes or max_bytes
        self.archive_paths = frozenset(archive_paths)

    def _limit_for(self, scope) -> tuple[int, str]:
        """-> (bytes allowed, the setting that says so)."""
        if scope.get("path") in self.archive_paths:
            for name, value in scope.get("headers", ()):
                if name == b"content-type" and value.lower().startswith(b"multipart/form-data"):
                    return self.max_archive_bytes, "SDHRNET_MAX_ARCHIVE_BYTES"
        return self.max_bytes, "SDHRNET_MAX_REQUEST_BYTES"

    @staticmethod
    def _too_large(limit: int, setting: str):
        exc = BodyTooLarge(limit, setting)
        return problem_response(413, exc.detail)

    async def _next_chunk(self, receive, body_done: bool):
        # after the body, receive() only waits for the client to disconnect, which may take any time
        if body_done or self.body_idle_s is None:
            return await receive()
        try:
            return await asyncio.wait_for(receive(), self.body_idle_s)
        except TimeoutError:
            raise BodyStalled(self.body_idle_s) from None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if self.max_header_bytes is not None:
            size = sum(len(name) + len(value) + 4 for name, value in scope.get("headers", ()))  # "name: value\r\n"
            if size > self.max_header_bytes:
                return await problem_response(
                    431, f"the request headers take {size} bytes, more than the {self.max_header_bytes} allowed; send "
                         "fewer or shorter headers (or raise SDHRNET_MAX_HEADER_BYTES on the server)")(scope, receive, send)
        limit, setting = self._limit_for(scope)
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    too_big = int(value) > limit
                except ValueError:
                    too_big = False
                if too_big:
                    return await self._too_large(limit, setting)(scope, receive, send)
        received = 0
        started = False
        body_done = False

        async def counting_receive():
            nonlocal received, body_done
            message = await self._next_chunk(receive, body_done)
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                body_done = not message.get("more_body", False)
                if received > limit:
                    raise BodyTooLarge(limit, setting)
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
                await self._too_large(limit, setting)(scope, receive, send)
        except BodyStalled as exc:
            if not started:
                await problem_response(408, exc.detail, headers=exc.headers)(scope, receive, send)
