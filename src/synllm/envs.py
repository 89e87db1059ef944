"""Pinned environments of generators and attacks whose pins clash with ours.

A tool that cannot share the main environment (``mostlyai-engine`` wants ``psutil<6``,
``anonymeter`` ``numpy<1.27``; see docs/peers.md) gets a requirements file ``envs/<name>.txt``
with every package pinned. :func:`build` makes it a virtual environment once, in a folder
outside ``results/`` named by the requirements' hash (``$SYNLLM_ENVS_DIR``, default
``~/.cache/synllm/envs/<name>-<hash>``): unchanged pins reuse the folder, changed pins build
a new one beside it. pip's own cache makes a rebuild cheap. The folder holds a marker written
only after a complete install, so an interrupted build is never taken for a built one.

A job uses an environment by running its Python on an adapter script of
``synllm/adapters/`` (:func:`run_adapter`): the adapter imports its tool plus pandas and
pyarrow only, and reads and writes files, so nothing of synllm has to be installed there.
The workflow's rule ``build_env`` writes a stamp (``results/envs/<name>.json``) that the jobs
take as input; ``synllm envs build NAME...`` (or ``scripts/setup.sh --peers``) builds ahead
of an offline run.

Plain ``venv`` + ``pip``, not ``uv``: the torch wheel pinned here (2.13.0, CPU) is found by
pip's configuration on the machines this runs on, and a torch-sized environment is then a
copy from pip's cache.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from synllm.errors import ConfigError, SynllmError

log = logging.getLogger("synllm.envs")

MARKER = ".synllm-env.json"
"""Written into an environment's folder after its install finished."""

ADAPTERS = Path(__file__).with_name("adapters")
"""The adapter scripts (one per tool; run by an environment's Python, never imported)."""


class EnvError(SynllmError):
    """An environment a job needs is missing or broken; the message names the build command."""


def build_command(name: str) -> str:
    return f"synllm envs build {name} (or: bash scripts/setup.sh --peers)"


def envs_root() -> Path:
    """Where environments are built: ``$SYNLLM_ENVS_DIR``, else ``~/.cache/synllm/envs``."""
    given = os.environ.get("SYNLLM_ENVS_DIR")
    if given:
        return Path(given).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "synllm" / "envs"


def default_requirements_dir() -> Path:
    """``envs/`` of the working directory, else of the repository this package runs from."""
    here = Path("envs")
    if here.is_dir():
        return here
    return Path(__file__).resolve().parents[2] / "envs"


def requirements_file(name: str, envs_dir: Path | None = None) -> Path:
    path = (envs_dir or default_requirements_dir()) / f"{name}.txt"
    if not path.is_file():
        known = sorted(p.stem for p in path.parent.glob("*.txt"))
        raise ConfigError(f"environment {name!r}: no requirements file {path} (known: {known})")
    return path


def env_key(requirements: Path) -> str:
    """12 hex digits of the requirements' content and the Python (major.minor) that builds it."""
    h = hashlib.sha256(requirements.read_bytes())
    h.update(f"python{sys.version_info.major}.{sys.version_info.minor}".encode())
    return h.hexdigest()[:12]


def env_path(name: str, requirements: Path, root: Path | None = None) -> Path:
    return (root or envs_root()) / f"{name}-{env_key(requirements)}"


def env_python(path: Path) -> Path:
    return path / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _size_mb(path: Path) -> float:
    total = sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())
    return round(total / 2**20, 1)


def read_marker(path: Path) -> dict | None:
    """The marker of a completely built environment at ``path``, else None."""
    try:
        info = json.loads((path / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return info if env_python(path).exists() else None


def build(name: str, requirements: Path, root: Path | None = None, force: bool = False) -> dict:
    """Build (or reuse) environment ``name`` from ``requirements``; returns its marker dict:
    name, key, path, python, build_seconds, size_mb, reused."""
    path = env_path(name, requirements, root)
    path.parent.mkdir(parents=True, exist_ok=True)
    # one builder per folder, also across processes (two worktrees, parallel tests)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        info = None if force else read_marker(path)
        if info is not None:
            return {**info, "reused": True}
        # a folder without the marker is an interrupted build: start again
        shutil.rmtree(path, ignore_errors=True)
        log.info("building environment %s in %s from %s", name, path, requirements)
        t0 = time.perf_counter()
        base = getattr(sys, "_base_executable", sys.executable)
        python = str(env_python(path))
        _run([base, "-m", "venv", str(path)], name)
        _run([python, "-m", "pip", "install", "-q", "--upgrade", "pip"], name)
        _run([python, "-m", "pip", "install", "-q", "-r", str(requirements)], name)
        info = {
            "name": name,
            "key": env_key(requirements),
            "requirements": requirements.name,
            "path": str(path),
            "python": f"{sys.version_info.major}.{sys.version_info.minor}",
            "build_seconds": round(time.perf_counter() - t0, 1),
            "size_mb": _size_mb(path),
        }
        (path / MARKER).write_text(json.dumps(info, indent=2) + "\n")
        return {**info, "reused": False}


def _run(cmd: list[str], name: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        last = (proc.stderr.strip() or proc.stdout.strip() or "no output").splitlines()[-1]
        raise EnvError(f"environment {name!r}: {' '.join(cmd[1:4])} failed ({last})")


def python_for(name: str, stamp: Path | None = None, requirements: Path | None = None) -> Path:
    """The Python of built environment ``name``: from the workflow's stamp when given, else
    from the requirements' hash. :class:`EnvError` in one line when it is not built."""
    if stamp is not None:
        try:
            path = Path(json.loads(Path(stamp).read_text())["path"])
        except (OSError, ValueError, KeyError):
            raise EnvError(
                f"environment {name!r}: stamp {stamp} is missing or unreadable; "
                f"build it with: {build_command(name)}"
            ) from None
    else:
        path = env_path(name, requirements or requirements_file(name))
    if read_marker(path) is None:
        raise EnvError(
            f"environment {name!r} is not built ({path}); build it with: {build_command(name)}"
        )
    return env_python(path)


def run_adapter(python: Path, adapter: str, args: list[str], name: str) -> None:
    """Run ``adapters/<adapter>.py`` with ``python``; its stderr goes to ours (the job log).

    The environment's own site-packages only: ``PYTHONPATH`` and user site are cleared so the
    adapter cannot pick up a package of the main environment."""
    script = ADAPTERS / f"{adapter}.py"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PYTHONNOUSERSITE"] = "1"
    proc = subprocess.run(
        [str(python), str(script), *args], env=env, stdout=sys.stderr, stderr=subprocess.PIPE
    )
    err = proc.stderr.decode(errors="replace")
    sys.stderr.write(err)
    if proc.returncode != 0:
        last = err.strip().splitlines()[-1] if err.strip() else f"exit status {proc.returncode}"
        if "ModuleNotFoundError" in last or "ImportError" in last:
            raise EnvError(
                f"environment {name!r} is broken ({last}); rebuild it with: "
                f"synllm envs build --force {name}"
            )
        raise SynllmError(f"{adapter} (environment {name!r}) failed: {last}")


def cli(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="synllm envs", description="build the pinned environments of envs/<name>.txt"
    )
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build (or reuse) environments")
    b.add_argument("names", nargs="+", help="environment names (envs/<name>.txt)")
    b.add_argument("--envs-dir", help="folder of the requirements files (default: envs/)")
    b.add_argument("--stamp", help="write this stamp (one name only): the workflow's rule")
    b.add_argument("--force", action="store_true", help="rebuild even when built")
    w = sub.add_parser("path", help="print the folder of a built environment")
    w.add_argument("name")
    w.add_argument("--envs-dir")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    envs_dir = Path(a.envs_dir) if a.envs_dir else None
    if a.command == "path":
        print(python_for(a.name, requirements=requirements_file(a.name, envs_dir)).parents[1])
        return 0
    if a.stamp and len(a.names) != 1:
        raise ConfigError("envs build: --stamp takes one environment name")
    for name in a.names:
        info = build(name, requirements_file(name, envs_dir), force=a.force)
        how = "reused" if info["reused"] else f"built in {info['build_seconds']:.0f} s"
        print(f"{name}: {info['path']} ({how}, {info['size_mb']:.0f} MB)")
        if a.stamp:
            Path(a.stamp).parent.mkdir(parents=True, exist_ok=True)
            Path(a.stamp).write_text(json.dumps(info, indent=2) + "\n")
    return 0
