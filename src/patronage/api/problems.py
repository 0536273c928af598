"""Errors rendered as RFC 9457 problem details (`application/problem+json`)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from patronage.errors import PatronageError

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger(__name__)


def problem(status: int, title: str, detail: str, **extra: Any) -> JSONResponse:
    """Return a problem+json response."""
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


def install_problem_handlers(app: FastAPI) -> None:
    """Map every error the app can raise to problem+json."""

    @app.exception_handler(PatronageError)
    async def _domain(request: Request, error: PatronageError) -> JSONResponse:
        response = problem(error.status_code, error.title, error.detail, **error.extra)
        if error.status_code == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="patronage"'
        return response

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, error: RequestValidationError) -> JSONResponse:
        errors = [
            {
                "location": ".".join(str(part) for part in item.get("loc", ())),
                "message": item.get("msg", ""),
            }
            for item in error.errors()
        ]
        return problem(422, "Unprocessable content", "the request is not valid", errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, error: StarletteHTTPException) -> JSONResponse:
        response = problem(error.status_code, _title(error.status_code), str(error.detail))
        for name, value in (error.headers or {}).items():
            response.headers[name] = value
        return response

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(500, "Internal server error", "an unexpected error occurred")


def _title(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
