"""The integrators' scenarios, driven through the Python client generated from the running app's
OpenAPI document (see `.ci/clients.py`, which generates it, starts the app and runs these).

Outside that script the generated package is not importable and the scenarios are skipped; with
SIPAS_CLIENT_REQUIRED=1 (as `.ci/clients.py` sets) a missing client is a failure instead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

REQUIRED = os.environ.get("SIPAS_CLIENT_REQUIRED") == "1"
ADMIN = ("admin", "demo-admin-2026")  # the demo account `sipas seed` creates

try:
    import sipas_client
except ImportError:  # pragma: no cover - depends on the generated client being on the path
    sipas_client = None


@pytest.fixture(scope="session")
def api() -> Any:
    """The generated package; its modules are imported by the scenarios through this."""
    if sipas_client is None:
        if REQUIRED:
            pytest.fail("the generated client `sipas_client` is not importable")
        pytest.skip("the generated client is not on the path; run .ci/clients.py")
    return sipas_client


@pytest.fixture(scope="session")
def base_url(api: Any) -> str:
    url = os.environ.get("SIPAS_API")
    if not url:
        pytest.fail("SIPAS_API (the running app's base URL) is not set")
    return url


def operation(base_url: str, method: str, path: str) -> Any | None:
    """The generated module of the operation at `method path`, found by its operationId in the
    running app's document; None when the app has no such operation."""
    import importlib

    import httpx

    document = httpx.get(base_url + "/openapi.json", timeout=30).json()
    op = document["paths"].get(path, {}).get(method)
    if op is None:
        return None
    tag = op["tags"][0].replace("-", "_")
    return importlib.import_module(f"sipas_client.api.{tag}.{op['operationId']}")


def password_token(base_url: str, username: str, password: str) -> str:
    from sipas_client import Client
    from sipas_client.api.auth import auth_token
    from sipas_client.models import BodyAuthToken, BodyAuthTokenGrantType, TokenResponse

    body = BodyAuthToken(
        grant_type=BodyAuthTokenGrantType.PASSWORD, username=username, password=password
    )
    with Client(base_url=base_url) as anonymous:
        answer = auth_token.sync_detailed(client=anonymous, body=body)
    assert answer.status_code == 200, answer.content
    assert isinstance(answer.parsed, TokenResponse)
    return str(answer.parsed.access_token)


def client_credentials_token(base_url: str, client_id: str, secret: str) -> str:
    from sipas_client import Client
    from sipas_client.api.auth import auth_token
    from sipas_client.models import BodyAuthToken, BodyAuthTokenGrantType, TokenResponse

    body = BodyAuthToken(
        grant_type=BodyAuthTokenGrantType.CLIENT_CREDENTIALS,
        client_id=client_id,
        client_secret=secret,
    )
    with Client(base_url=base_url) as anonymous:
        answer = auth_token.sync_detailed(client=anonymous, body=body)
    assert answer.status_code == 200, answer.content
    assert isinstance(answer.parsed, TokenResponse)
    return str(answer.parsed.access_token)


@pytest.fixture(scope="session")
def admin(base_url: str) -> Iterator[Any]:
    from sipas_client import AuthenticatedClient

    token = password_token(base_url, *ADMIN)
    with AuthenticatedClient(base_url=base_url, token=token) as client:
        yield client


@pytest.fixture(scope="session")
def machine(base_url: str, admin: Any) -> Any:
    """`machine("name", ["scope", ...])`: a new machine client, registered by the admin through
    the API, logged in with the client-credentials grant."""
    from sipas_client import AuthenticatedClient
    from sipas_client.api.clients import clients_create
    from sipas_client.models import ClientCreate, ClientWithSecret, Scope

    opened: list[Any] = []

    def make(name: str, scopes: list[str]) -> Any:
        body = ClientCreate(
            name=f"{name} {uuid.uuid4().hex[:6]}", scopes=[Scope(s) for s in scopes]
        )
        created = clients_create.sync_detailed(client=admin, body=body)
        assert created.status_code == 201, created.content
        assert isinstance(created.parsed, ClientWithSecret)
        token = client_credentials_token(
            base_url, str(created.parsed.client_id), str(created.parsed.client_secret)
        )
        client = AuthenticatedClient(base_url=base_url, token=token)
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.__exit__()
