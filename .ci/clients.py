"""Generate clients from the running app's OpenAPI document and drive the integrators' scenarios
through them.

1. Start the app under uvicorn on a free 127.0.0.1 port against `sipas_clients`, a database on
   the embedded PostgreSQL that this script drops, recreates, migrates and seeds with
   `sipas seed` (the demo province, campaigns and accounts).
2. Download `/openapi.json`.
3. Generate a Python client with openapi-python-client: any line of its output other than
   "Generating client" (it prints its warnings and drops what it cannot handle) fails the run.
4. Generate TypeScript types with openapi-typescript (npm, pinned, installed without a lock file
   into a scratch folder) and type-check `.ci/client_scenarios/check.ts` with `tsc --noEmit`;
   any warning fails the run.
5. Run the three scenarios of `.ci/client_scenarios/` (frontend, one-stop, report fetcher) with
   pytest through the generated Python client. A skipped scenario fails the run.

    .venv/bin/python .ci/clients.py
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import Server, prepare_database, server_env  # noqa: E402

DATABASE = "sipas_clients"
OUT = ROOT / ".data" / "clients"
LOG = OUT / "server.log"
SCENARIOS = ROOT / ".ci" / "client_scenarios"
BIN = Path(sys.executable).parent
NPM_PACKAGES = ["openapi-typescript@7.13.0", "typescript@5.9.3"]
# openapi-python-client has no CSV or XLSX type; they are downloads, bytes to it.
PYTHON_CLIENT_CONFIG = """\
project_name_override: sipas-client
package_name_override: sipas_client
content_type_overrides:
  text/csv: application/octet-stream
  application/vnd.openxmlformats-officedocument.spreadsheetml.sheet: application/octet-stream
"""


def run(command: list[str], *, cwd: Path = ROOT, env: dict[str, str] | None = None) -> str:
    """Run a step; its output is returned, and it fails the run when the step fails."""
    done = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=600
    )
    output = done.stdout + done.stderr
    if done.returncode != 0:
        print(output)
        raise SystemExit(f"{' '.join(command[:3])} ... exited with {done.returncode}")
    return output


def unexpected(output: str, allowed: tuple[str, ...]) -> list[str]:
    """The lines of a generator's output that are not one of its plain progress lines."""
    return [
        line
        for line in output.splitlines()
        if line.strip() and not any(line.strip().startswith(a) for a in allowed)
    ]


def python_client(document: Path) -> Path:
    target = OUT / "python"
    shutil.rmtree(target, ignore_errors=True)
    config = OUT / "openapi-python-client.yml"
    config.write_text(PYTHON_CLIENT_CONFIG)
    # Its post-generation hook formats the code with ruff, which must be on PATH.
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    output = run(
        [
            str(BIN / "openapi-python-client"),
            "generate",
            "--path",
            str(document),
            "--output-path",
            str(target / "sipas_client"),
            "--config",
            str(config),
            "--meta",
            "none",
        ],
        env=env,
    )
    noise = unexpected(output, ("Generating ",))
    if noise:
        print(output)
        raise SystemExit("openapi-python-client printed warnings (above)")
    print("python client generated without warnings")
    return target


def typescript_client(document: Path) -> None:
    work = OUT / "typescript"
    work.mkdir(parents=True, exist_ok=True)
    if not (work / "node_modules" / ".bin" / "tsc").exists():
        run(
            [
                "npm",
                "install",
                "--no-save",
                "--no-package-lock",
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
                *NPM_PACKAGES,
            ],
            cwd=work,
        )
    bin_ = work / "node_modules" / ".bin"
    output = run([str(bin_ / "openapi-typescript"), str(document), "-o", "schema.d.ts"], cwd=work)
    noise = unexpected(output, ("✨ openapi-typescript", "🚀"))
    if noise:
        print(output)
        raise SystemExit("openapi-typescript printed warnings (above)")
    shutil.copy(SCENARIOS / "check.ts", work / "check.ts")
    output = run(
        [
            str(bin_ / "tsc"),
            "--noEmit",
            "--strict",
            "--noUnusedLocals",
            "--target",
            "es2022",
            "--module",
            "esnext",
            "--moduleResolution",
            "bundler",
            "check.ts",
        ],
        cwd=work,
    )
    if output.strip():
        print(output)
        raise SystemExit("tsc printed diagnostics (above)")
    print("typescript types generated and check.ts type-checks")


def scenarios(base: str, client_path: Path) -> int:
    report = OUT / "scenarios.xml"
    env = {
        **os.environ,
        "SIPAS_API": base,
        "SIPAS_CLIENT_REQUIRED": "1",
        "PYTHONPATH": os.pathsep.join([str(client_path), str(ROOT)]),
    }
    status = subprocess.run(
        [
            str(BIN / "pytest"),
            str(SCENARIOS),
            "-p",
            "no:cacheprovider",
            "-o",
            "testpaths=.ci/client_scenarios",
            f"--junitxml={report}",
        ],
        cwd=ROOT,
        env=env,
        check=False,
    ).returncode
    suite = ET.parse(report).getroot()  # noqa: S314 - written by our own pytest just now
    suite = suite if suite.tag == "testsuite" else suite[0]
    counts = {k: int(suite.get(k, "0")) for k in ("tests", "failures", "errors", "skipped")}
    print(f"client scenarios: {counts}")
    if counts["skipped"] or counts["tests"] < 3:
        print("every client scenario must run in CI; none may be skipped")
        return status or 1
    return status


def main() -> int:
    started = time.monotonic()
    OUT.mkdir(parents=True, exist_ok=True)
    url = prepare_database(DATABASE)
    env = server_env(url)
    run([str(BIN / "sipas"), "seed", "--demo-accounts"], env=env)
    LOG.unlink(missing_ok=True)
    server = Server("app.main:create_app", env, workers=1, log=LOG)
    server.start()
    try:
        document = OUT / "openapi.json"
        response = httpx.get(server.base + "/openapi.json", timeout=30)
        response.raise_for_status()
        document.write_bytes(response.content)
        client_path = python_client(document)
        typescript_client(document)
        status = scenarios(server.base, client_path)
    finally:
        server.stop()
    print(f"clients and scenarios finished in {time.monotonic() - started:.0f} s")
    return status


if __name__ == "__main__":
    sys.exit(main())
