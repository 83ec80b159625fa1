"""JSON request bodies parsed without binary floats.

FastAPI reads a body with `request.json()`; this route class swaps in a parser that turns every
JSON number with a fraction or exponent into a Decimal and `NaN`/`Infinity` into a marker the
money validator refuses by name. Install it with `app.router.route_class = DecimalJSONRoute`
before the routes are added.
"""

import json
from collections.abc import Callable, Coroutine
from decimal import Decimal
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from shared.money import NonFiniteNumber


def loads_exact(text: bytes | str) -> Any:
    return json.loads(text, parse_float=Decimal, parse_constant=NonFiniteNumber)


class DecimalJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = loads_exact(await self.body())
        return self._json


class DecimalJSONRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def exact_json_handler(request: Request) -> Response:
            return await handler(DecimalJSONRequest(request.scope, request.receive))

        return exact_json_handler
