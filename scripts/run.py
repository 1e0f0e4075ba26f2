#!/usr/bin/env python3
"""The project's two commands, each doing its own set-up.

    python3 scripts/run.py main    # the main job (creates/updates .venv first)
    python3 scripts/run.py test    # lint (ruff) + the whole test suite

Set-up is idempotent: .venv is created once and re-installed only when pyproject.toml
changes (a hash is kept in .venv/adkit-setup.stamp).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
STAMP = VENV / "adkit-setup.stamp"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / ("python.exe" if os.name == "nt" else "python")


def create_venv() -> None:
    """A venv with pip; where ensurepip is missing (Debian's python3 without python3-venv),
    a venv without pip that the system's pip then equips."""
    try:
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
        return
    except (subprocess.CalledProcessError, OSError) as exc:
        print(f"venv with pip failed ({exc}); trying the system pip instead", file=sys.stderr)
    venv.EnvBuilder(with_pip=False, clear=True).create(VENV)
    rc = subprocess.run([sys.executable, "-m", "pip", "--python", str(PY), "install", "-q", "pip"]).returncode
    if rc:
        sys.exit(
            "could not put pip into .venv: install Python's venv support (e.g. `apt install python3-venv`) "
            "or a pip >= 22.3, then run this command again"
        )


def ensure_venv() -> None:
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if PY.exists() and STAMP.exists() and STAMP.read_text().strip() == wanted:
        return
    if not PY.exists() or subprocess.run([str(PY), "-m", "pip", "--version"], capture_output=True).returncode:
        print("setting up .venv ...", file=sys.stderr)
        create_venv()
    quiet = ["-q", "--disable-pip-version-check"]
    subprocess.run([str(PY), "-m", "pip", "install", *quiet, "--upgrade", "pip"], check=True)
    subprocess.run([str(PY), "-m", "pip", "install", *quiet, "-e", f"{ROOT}[dev]"], check=True)
    STAMP.write_text(wanted)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("main", "test"):
        print(__doc__)
        return 2
    ensure_venv()
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", MPLBACKEND="Agg")
    if argv[0] == "main":
        return subprocess.run([str(PY), "-m", "adkit", "bench", *argv[1:]], cwd=ROOT, env=env).returncode
    for cmd in ([str(PY), "-m", "ruff", "check", "."], [str(PY), "-m", "ruff", "format", "--check", "."]):
        rc = subprocess.run(cmd, cwd=ROOT, env=env).returncode
        if rc:
            print(f"lint failed: {' '.join(cmd[2:])} (run `.venv/bin/ruff format .` to fix formatting)")
            return rc
    # the README's test command is deterministic wherever it runs (hypothesis's fixed "ci"
    # profile); HYPOTHESIS_PROFILE=dev explores random examples
    env.setdefault("HYPOTHESIS_PROFILE", "ci")
    return subprocess.run([str(PY), "-m", "pytest", *argv[1:]], cwd=ROOT, env=env).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
