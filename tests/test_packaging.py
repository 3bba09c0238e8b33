"""The set-up files agree with each other."""

import re
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

ROOT = Path(__file__).resolve().parents[1]
CONDA_TO_PYPI = {"pytorch": "torch"}


def _name_and_bound(req: str) -> tuple[str, str]:
    match = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(>=\s*[\d.]+)?", req)
    return match.group(1).lower().replace("_", "-"), (match.group(2) or "").replace(" ", "")


def test_environment_yml_names_the_same_dependencies_as_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = list(project["dependencies"]) + [
        r for reqs in project["optional-dependencies"].values() for r in reqs
    ]
    from_pyproject = dict(_name_and_bound(r) for r in declared)

    from_env = {}
    text = (ROOT / "environment.yml").read_text()
    for line in text.split("dependencies:", 1)[1].splitlines():
        item = re.match(r"^\s+-\s+(.+)$", line)
        if not item or item.group(1).startswith("-e") or item.group(1).rstrip(":") == "pip":
            continue
        name, bound = _name_and_bound(item.group(1))
        from_env[CONDA_TO_PYPI.get(name, name)] = bound
    from_env.pop("python")
    assert from_env == from_pyproject


def test_torch_is_only_a_loose_lower_bound_and_ipywidgets_accepts_colab():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    torch_req = next(d for d in deps if d.startswith("torch"))
    assert re.fullmatch(r"torch>=[\d.]+", torch_req), (
        "never pin torch: Colab's CUDA build must be kept"
    )
    assert "ipywidgets>=7.7" in deps
