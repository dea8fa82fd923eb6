"""The aiohttp application factory."""

from aiohttp import web

from services.api import health
from services.api.state import RUNTIME, AppState


def create_app(state: AppState) -> web.Application:
    app = web.Application()
    app[RUNTIME] = state
    health.add_routes(app)
    return app
