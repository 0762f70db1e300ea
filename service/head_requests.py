"""HEAD answered as GET without a body (RFC 9110 9.3.2). FastAPI's GET routes do not take HEAD, so load balancers
and uptime checks that probe with HEAD got 405 while the Allow header listed HEAD."""


class HeadAsGetMiddleware:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "HEAD":
            return await self.app(scope, receive, send)

        async def headers_only(message):
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return  # the GET body is produced and dropped; its content-length header stays, as HEAD wants
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        # a copy: the server keeps its own scope, in which the method is still HEAD
        await self.app(dict(scope, method="GET"), receive, headers_only)
