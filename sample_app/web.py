"""checkout's HTTP side: the JSON API and a small live page (Starlette, served by uvicorn).

* ``POST /orders`` places an order; the ``Idempotency-Key`` header makes a retry place nothing
  new (201 the first time, 200 with the same order after).
* ``GET /orders`` lists recent orders, ``GET /orders/{id}`` shows one, with its history.
* ``GET /`` is a page that polls ``/orders`` and shows each order's state, history and
  cancellation reason as they change, with a form to place an order.
"""

from __future__ import annotations

import socket
import uuid
from importlib import resources
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from sample_app.checkout import Checkout, NewOrder


def app_for(checkout: Checkout) -> Starlette:
    """The checkout web application."""

    async def page(request: Request) -> Response:
        html = resources.files("sample_app").joinpath("page.html").read_text(encoding="utf-8")
        return HTMLResponse(html)

    async def place(request: Request) -> Response:
        try:
            order = _new_order(await request.json())
        except (ValueError, TypeError, KeyError) as exc:
            return JSONResponse({"error": f"bad order: {exc}"}, status_code=422)
        key = request.headers.get("idempotency-key") or f"anon-{uuid.uuid4().hex}"
        placed, created = await checkout.place(order, key)
        return JSONResponse(placed, status_code=201 if created else 200)

    async def listing(request: Request) -> Response:
        limit = min(int(request.query_params.get("limit", "50")), 1000)
        return JSONResponse(await checkout.recent(limit))

    async def one(request: Request) -> Response:
        found = await checkout.get(request.path_params["order_id"])
        if found is None:
            return JSONResponse({"error": "no such order"}, status_code=404)
        return JSONResponse(found)

    return Starlette(
        routes=[
            Route("/", page),
            Route("/orders", place, methods=["POST"]),
            Route("/orders", listing, methods=["GET"]),
            Route("/orders/{order_id}", one),
        ]
    )


def _new_order(body: Any) -> NewOrder:
    quantity, amount = int(body["quantity"]), float(body["amount"])
    customer, sku = str(body["customer"]).strip(), str(body["sku"]).strip()
    if quantity < 1 or amount <= 0 or not customer or not sku:
        raise ValueError("customer and sku are required; quantity and amount must be positive")
    return NewOrder(customer, sku, quantity, amount, str(body.get("card", "")))


class WebServer:
    """uvicorn on a localhost socket of its own, inside the shop's event loop."""

    def __init__(self, checkout: Checkout, port: int = 0, host: str = "127.0.0.1") -> None:
        config = uvicorn.Config(app_for(checkout), log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind((host, port))
        self.url = f"http://{host}:{self.socket.getsockname()[1]}"
        self._task: Any = None

    async def start(self) -> None:
        """Serve in the background until :meth:`stop`."""
        import asyncio

        self._task = asyncio.create_task(self.server.serve(sockets=[self.socket]))
        while not self.server.started:
            if self._task.done():
                self._task.result()  # raises what stopped it
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        """Stop serving (open connections are closed)."""
        self.server.should_exit = True
        if self._task is not None:
            await self._task
        self.socket.close()
