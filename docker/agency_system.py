"""The demo agency system of docker/compose.yaml: answers 200 to each packet POSTed to /inbox
and prints its id, sender and recipient. Not part of the adapter."""

from aiohttp import web


async def inbox(request: web.Request) -> web.Response:
    body = await request.read()
    print(  # noqa: T201  # the container's log is the point
        request.headers.get("X-LGSP-Packet-Id"),
        request.headers.get("X-LGSP-Sender"),
        "->",
        request.headers.get("X-LGSP-Recipient"),
        f"{len(body)} bytes",
        flush=True,
    )
    return web.Response(text="ok")


app = web.Application()
app.router.add_post("/inbox", inbox)

if __name__ == "__main__":
    web.run_app(app, host="0.0.0.0", port=9000)  # noqa: S104  # inside its container
