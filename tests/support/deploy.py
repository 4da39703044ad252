"""Readers for the deployment files (compose, kustomize, Dockerfile) that the deploy tests check."""

import fnmatch
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
K8S_DIR = ROOT / "deploy" / "k8s"
COTURN_DIR = ROOT / "deploy" / "coturn"

# Folders whose Python sources name every environment variable the services read.
SOURCE_DIRS = (ROOT / "shared", ROOT / "services")

# A quoted upper-case name such as "GATEWAY_PORT"; settings modules pass these to env_* readers.
ENV_NAME_LITERAL = re.compile(r"""["']([A-Z][A-Z0-9_]{2,})["']""")

# Keys of kustomization.yaml that list files or folders, relative to the kustomization.
KUSTOMIZE_PATH_LISTS = ("resources", "components", "patchesStrategicMerge", "crds")


def load_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as stream:
        return yaml.safe_load(stream)


def load_yaml_documents(path: Path) -> list[dict[str, Any]]:
    """Return the non-empty documents of a multi-document YAML file."""
    with path.open(encoding="utf-8") as stream:
        return [document for document in yaml.safe_load_all(stream) if document]


def env_names_read_by_code() -> set[str]:
    """Collect every quoted upper-case name in shared/ and services/, a superset of the env names read."""
    names: set[str] = set()
    for folder in SOURCE_DIRS:
        for source in folder.rglob("*.py"):
            names.update(ENV_NAME_LITERAL.findall(source.read_text(encoding="utf-8")))
    return names


@dataclass(frozen=True, slots=True)
class KustomizeReference:
    """One path that a kustomization.yaml lists, and under which key."""

    kustomization: Path
    key: str
    path: Path


def kustomizations() -> list[Path]:
    return sorted([*K8S_DIR.rglob("kustomization.yaml"), *COTURN_DIR.glob("kustomization.yaml")])


def kustomize_references(kustomization: Path) -> Iterator[KustomizeReference]:
    """Yield every file or folder that a kustomization lists: resources, patches and generator inputs."""
    spec = load_yaml(kustomization) or {}
    folder = kustomization.parent

    for key in KUSTOMIZE_PATH_LISTS:
        for entry in spec.get(key) or []:
            yield KustomizeReference(kustomization, key, folder / entry)

    for patch in spec.get("patches") or []:
        if "path" in patch:
            yield KustomizeReference(kustomization, "patches", folder / patch["path"])

    for key in ("configMapGenerator", "secretGenerator"):
        for generator in spec.get(key) or []:
            for entry in generator.get("files") or []:
                # A files entry may rename the key: "key=path".
                yield KustomizeReference(kustomization, f"{key}.files", folder / entry.split("=", 1)[-1])
            for entry in generator.get("envs") or []:
                yield KustomizeReference(kustomization, f"{key}.envs", folder / entry)


def manifest_files() -> list[Path]:
    """List the Kubernetes manifests: files that kustomizations list as resources, and example manifests.

    Patches are left out because they are partial objects; the kustomize build test checks their result.
    """
    listed: set[Path] = set()
    patches: set[Path] = set()
    for kustomization in kustomizations():
        for reference in kustomize_references(kustomization):
            resolved = reference.path.resolve()
            if reference.key in ("resources", "crds") and resolved.is_file():
                listed.add(resolved)
            elif reference.key in ("patches", "patchesStrategicMerge"):
                patches.add(resolved)
    examples = {
        path.resolve()
        for path in K8S_DIR.rglob("*.yaml")
        if path.name != "kustomization.yaml" and path.resolve() not in patches and path.resolve() not in listed
    }
    return sorted(listed | examples)


def dockerfile_instructions() -> list[tuple[str, str]]:
    """Return (instruction, arguments) pairs of the Dockerfile, with continuation lines joined."""
    lines: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        stripped = raw.strip()
        # Docker skips comments and blank lines, also inside a continued instruction.
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    instructions = []
    for line in lines:
        keyword, _, arguments = line.partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
    return instructions


def dockerignore_excludes(relative_path: str) -> bool:
    """Tell whether .dockerignore keeps `relative_path` out of the build context.

    Follows Docker's rules: the last matching pattern wins, `!` re-includes, a pattern that
    matches a folder matches everything below it, and `**` matches any number of folders.
    """
    excluded = False
    for raw in DOCKERIGNORE.read_text(encoding="utf-8").splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negated = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        if _dockerignore_matches(pattern, relative_path):
            excluded = not negated
    return excluded


def _dockerignore_matches(pattern: str, relative_path: str) -> bool:
    parts = relative_path.strip("/").split("/")
    candidates = ["/".join(parts[: index + 1]) for index in range(len(parts))]
    regex = _glob_to_regex(pattern)
    return any(regex.fullmatch(candidate) for candidate in candidates)


def _glob_to_regex(pattern: str) -> re.Pattern[str]:
    pieces = []
    for segment in pattern.split("/"):
        if segment == "**":
            pieces.append("(?:.*)")
        else:
            pieces.append(fnmatch.translate(segment).removesuffix(r"\Z").replace(".*", "[^/]*"))
    regex = "/".join(pieces).replace("(?:.*)/", "(?:.*/)?")
    return re.compile(regex)
