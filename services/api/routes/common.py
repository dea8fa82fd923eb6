"""Small pieces every route module uses: id path parameters and JSON responses."""

from typing import Any

from aiohttp import web

from services.api.parsing import uuid_path_param


def account_id(request: web.Request) -> str:
    """System Accounts family: ids are plain strings in the spec, so a malformed id is a 404."""
    return str(
        uuid_path_param(
            request,
            "accountId",
            malformed="not_found",
            not_found_detail="The requested system account was not found",
        )
    )


def token_id(request: web.Request) -> str:
    return str(
        uuid_path_param(
            request,
            "tokenId",
            malformed="not_found",
            not_found_detail="The requested access token was not found",
        )
    )


def account_role_id(request: web.Request) -> str:
    return str(
        uuid_path_param(
            request, "roleId", malformed="not_found", not_found_detail="The assigned role was not found"
        )
    )


def team_id(request: web.Request) -> str:
    """Teams family: ids are ``format: uuid``, so a malformed id is a 400 naming ``teamId``."""
    return str(uuid_path_param(request, "teamId"))


def team_role_id(request: web.Request) -> str:
    return str(uuid_path_param(request, "roleId"))


def json(body: Any, status: int = 200) -> web.Response:
    return web.json_response(body, status=status)


def no_content(status: int = 204) -> web.Response:
    return web.Response(status=status)
