"""The floor for single-form ingestion: a raw ASGI app that stores a form with one INSERT.

No framework, no validation, no auth, no audit, no rate limit: it parses the JSON body and runs
one asyncpg statement that writes the same row the real app writes (agency and stratum looked up
by the statement itself), then answers 201 with the new id. Served by uvicorn exactly as the
app is (see bench/ingest.py). Configured by MINIMAL_DSN and MINIMAL_CAMPAIGN_ID.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import asyncpg

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

INSERT = """
INSERT INTO submissions (campaign_id, client_submission_id, request_hash, agency_id, stratum_id,
                         respondent_type, channel, answers, received_at)
SELECT $1, $2, $3, a.id, s.id, $5, $6, $7::jsonb, now()
FROM agencies a
LEFT JOIN strata s ON s.campaign_id = $1 AND s.agency_id = a.id AND s.sector_id IS NULL
WHERE a.code = $4
RETURNING id
"""

_pool: asyncpg.Pool | None = None
_campaign = uuid.UUID(int=0)


async def _reply(send: Send, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    global _pool, _campaign
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                _campaign = uuid.UUID(os.environ["MINIMAL_CAMPAIGN_ID"])
                _pool = await asyncpg.create_pool(
                    os.environ["MINIMAL_DSN"], min_size=2, max_size=10
                )
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if _pool is not None:
                    await _pool.close()
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    if scope["path"] == "/readyz":
        await _reply(send, 200, {"status": "ok"})
        return
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    raw = b"".join(chunks)
    form = json.loads(raw)
    assert _pool is not None  # noqa: S101 - set at startup
    row_id = await _pool.fetchval(
        INSERT,
        _campaign,
        uuid.UUID(form["submission_id"]),
        hashlib.sha256(raw).hexdigest(),
        form["agency_code"],
        form.get("respondent_type"),
        form["channel"],
        json.dumps(form["answers"]),
    )
    await _reply(send, 201, {"id": str(row_id), "submission_id": form["submission_id"]})
