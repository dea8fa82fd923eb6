"""The console's aiohttp application, mounted at ``/console`` on the service's own application (and
``/`` redirects there): templates (Jinja2, autoescaped) and the static assets (htmx, the style
sheet, the copy button's script) ship inside this package; nothing is fetched from elsewhere.
``static/htmx.min.js`` is htmx 2.0.11 as published on npm (``htmx.org``, Zero-Clause BSD licence in
``static/htmx.LICENSE``), committed as it is: no Node build is needed to install or run."""

from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web

from services.api import state
from services.console import filters
from services.console.context import OPTIONS, ConsoleOptions
from services.console.guard import PREFIX, console_middleware
from services.console.views import accounts, audit, signin, teams, tokens

STATIC = Path(__file__).parent / "static"


def create_console(service: web.Application, options: ConsoleOptions) -> web.Application:
    """The console's application. It holds the very cells of ``service``'s late-bound services it
    uses (``services.api.state``), so binding the service's application binds the console too."""
    console = web.Application(middlewares=[console_middleware])
    console[state.READ_POOL] = service[state.READ_POOL]
    console[state.DISPATCHER] = service[state.DISPATCHER]
    console[state.VERIFIER] = service[state.VERIFIER]
    console[state.USAGE] = service[state.USAGE]
    console[state.ORGANIZATION] = service[state.ORGANIZATION]
    console[state.CATALOGUE] = service[state.CATALOGUE]
    console[state.PROJECTIONS] = service[state.PROJECTIONS]
    console[state.CLOCK] = service[state.CLOCK]
    console[OPTIONS] = options
    environment = aiohttp_jinja2.setup(
        console,
        loader=jinja2.PackageLoader("services.console", "templates"),
        autoescape=jinja2.select_autoescape(default=True),
        undefined=jinja2.StrictUndefined,
    )
    filters.install(environment)
    signin.add_routes(console)
    accounts.add_routes(console)
    tokens.add_routes(console)
    teams.add_routes(console)
    audit.add_routes(console)
    console.router.add_static("/static", STATIC, append_version=False)
    return console


async def _to_console(request: web.Request) -> web.Response:
    return web.Response(status=302, headers={"Location": PREFIX + "/"})


def mount_console(app: web.Application, options: ConsoleOptions) -> None:
    """Mounts the console on the service's application (``services.api.app.create_app``), before it
    is bound to a runtime."""
    app.add_subapp(PREFIX, create_console(app, options))
    app.router.add_get("/", _to_console)
    app.router.add_get(PREFIX, _to_console)
