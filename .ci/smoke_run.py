"""Prove the README's first command: `make run` serves /readyz within a minute, the demo admin
can log in, and Ctrl-C (SIGINT) stops everything, leaving no PostgreSQL process behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PORT = os.environ.get("SMOKE_PORT", "18765")
BASE = f"http://127.0.0.1:{PORT}"


def get(path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(BASE + path, timeout=5) as response:  # noqa: S310
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def postgres_left() -> list[str]:
    pgdata = str(ROOT / ".data" / "pg")
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "postgres" in cmdline and pgdata in cmdline:
            found.append(f"{proc.name}: {cmdline}")
    return found


def main() -> int:
    env = {**os.environ, "PORT": PORT}
    env.pop("DATABASE_URL", None)
    log = open(ROOT / ".data" / "smoke-run.log", "w")  # noqa: SIM115
    started = time.monotonic()
    proc = subprocess.Popen(
        ["make", "run"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        while True:
            if proc.poll() is not None:
                print(f"make run exited early with {proc.returncode}")
                return 1
            try:
                status, _ = get("/readyz")
            except OSError:
                status = 0
            if status == 200:
                break
            if time.monotonic() - started > 60:
                print("/readyz was not 200 within 60 s")
                return 1
            time.sleep(0.5)
        print(f"/readyz answered 200 after {time.monotonic() - started:.1f} s")
        status, _ = get("/docs")
        assert status == 200, f"/docs answered {status}"
        form = urllib.parse.urlencode(
            {"grant_type": "password", "username": "admin", "password": "demo-admin-2026"}
        ).encode()
        with urllib.request.urlopen(BASE + "/api/v1/auth/token", data=form, timeout=10) as r:  # noqa: S310
            assert json.loads(r.read())["token_type"] == "bearer"
        print("the demo admin logged in")
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            print("make run did not stop within 30 s of Ctrl-C")
            return 1
        log.close()
    time.sleep(1)
    left = postgres_left()
    if left:
        print("PostgreSQL processes left behind:\n" + "\n".join(left))
        return 1
    output = (ROOT / ".data" / "smoke-run.log").read_text()
    for needed in (f"{BASE}/docs", "admin", "demo-admin-2026"):
        if needed not in output:
            print(f"make run did not print {needed!r}")
            return 1
    print("make run stopped cleanly on Ctrl-C and left no PostgreSQL process")
    return 0


if __name__ == "__main__":
    sys.exit(main())
