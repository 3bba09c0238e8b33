"""Create ``.venv`` if missing and install the course into it (standard library only).

torch is handled first and on its own:

- if the environment already has a torch at or above the lower bound in pyproject.toml,
  it is kept as it is (a CUDA build on a GPU machine is never replaced);
- otherwise ``--torch`` (default ``torch==2.13.0``) is installed. Doing this before the
  package keeps pip from resolving the loose ``torch>=`` requirement to the newest CUDA
  build, several GB.

Then ``pip install -e .[dev]`` (plus ``[lab]`` with ``--lab``), which finds torch satisfied.

Usage: python3 tools/install.py [--venv .venv] [--torch torch==2.13.0] [--lab]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def torch_lower_bound() -> tuple[int, ...]:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    match = re.search(r'"torch>=([\d.]+)"', text)
    return tuple(int(p) for p in match.group(1).split(".")) if match else (0,)


def installed_torch(python: Path) -> tuple[int, ...] | None:
    out = subprocess.run(
        [str(python), "-c", "import torch; print(torch.__version__)"],
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        return None
    return tuple(int(p) for p in re.findall(r"\d+", out.stdout.split("+")[0])[:3])


def pip(python: Path, *args: str) -> None:
    cmd = [str(python), "-m", "pip", "install", "--disable-pip-version-check", *args]
    print("+", " ".join(cmd[2:]), flush=True)
    subprocess.run(cmd, check=True)


def main() -> int:
    parser = argparse.ArgumentParser(description="Install the course into a virtual environment.")
    parser.add_argument("--venv", default=str(ROOT / ".venv"))
    parser.add_argument(
        "--torch", default="torch==2.13.0", help="requirement used when torch is missing"
    )
    parser.add_argument("--lab", action="store_true", help="also install JupyterLab")
    args = parser.parse_args()
    env_dir = Path(args.venv)
    python = env_dir / "bin" / "python"
    if not python.exists():
        print(f"creating {env_dir}", flush=True)
        try:
            venv.create(env_dir, with_pip=True)
        except Exception as e:  # noqa: BLE001 - Debian/Ubuntu without python3-venv fail here
            raise SystemExit(
                f"could not create a virtual environment ({e}). On Debian/Ubuntu run "
                "`sudo apt install python3-venv`, then try again."
            ) from e
    version = installed_torch(python)
    if version is not None and version >= torch_lower_bound():
        print(f"keeping the installed torch {'.'.join(map(str, version))}", flush=True)
    else:
        pip(python, args.torch)
    pip(python, "-q", "-e", f"{ROOT}[dev{',lab' if args.lab else ''}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
