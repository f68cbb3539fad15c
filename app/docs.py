"""/docs (Swagger UI) and /redoc served with their assets from an installed package.

FastAPI's own pages load their scripts and styles from a CDN, so on a network without internet
they are blank. The `fastapi-offline` package ships the Swagger UI and ReDoc bundles; they are
mounted under `/docs/assets` and the pages point there (and ReDoc asks for no web fonts).
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources

from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = "/docs/assets"


def install_docs(app: FastAPI, openapi_url: str = "/openapi.json") -> None:
    static = resources.files("fastapi_offline") / "static"
    app.mount(ASSETS, StaticFiles(directory=str(static)), name="docs-assets")
    redirect = "/docs/oauth2-redirect"

    def page(path: str, render: Callable[[str], HTMLResponse]) -> None:
        """Serve `render(root)` at `path`: `root` is the prefix a proxy serves the app under,
        which every URL the page loads must start with."""

        @app.get(path, include_in_schema=False, name=render.__name__)
        async def serve(request: Request) -> HTMLResponse:
            return render(request.scope.get("root_path", ""))

    def swagger_ui(root: str) -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=root + redirect,
            swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS}/favicon.png",
            swagger_ui_parameters={"persistAuthorization": True},
        )

    def redoc(root: str) -> HTMLResponse:
        return get_redoc_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS}/favicon.png",
            with_google_fonts=False,
        )

    page("/docs", swagger_ui)

    @app.get(redirect, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    page("/redoc", redoc)
