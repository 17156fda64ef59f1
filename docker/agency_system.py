"""The demo agency system of docker/compose.yaml and scripts/two-daemons.sh: answers 200 to each
packet POSTed to /inbox and prints its id, sender and recipient. Not part of the adapter.
AGENCY_SYSTEM_HOST and AGENCY_SYSTEM_PORT say where it listens (default: every address, 9000)."""

import os

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
    web.run_app(
        app,
        host=os.environ.get("AGENCY_SYSTEM_HOST", "0.0.0.0"),  # noqa: S104  # its container's
        port=int(os.environ.get("AGENCY_SYSTEM_PORT", "9000")),
        print=None,
    )
