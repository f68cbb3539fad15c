"""Running the operator commands as a deployment script would: a subprocess of `app.cli`."""

from __future__ import annotations

import os
import subprocess
import sys


def sipas(database_url: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": database_url, "ENVIRONMENT": "test", "LOG_LEVEL": "ERROR"}
    return subprocess.run(  # noqa: S603 - our own CLI with fixed arguments
        [sys.executable, "-m", "app.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
