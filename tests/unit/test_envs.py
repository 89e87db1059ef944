"""synllm.envs: environments keyed by their requirements, the one-line errors of a missing or
half-built one, and the stamp the workflow's jobs read (building one: tests/unit/test_attacks.py
and tests/workflow/test_anonymeter_grid.py, slow)."""

from __future__ import annotations

import json

import pytest

from synllm import envs
from synllm.cli import main
from synllm.errors import ConfigError


@pytest.fixture
def reqs(tmp_path):
    d = tmp_path / "envs"
    d.mkdir()
    (d / "tool.txt").write_text("pandas==2.3.3\n")
    return d


def test_the_folder_is_keyed_by_the_requirements_content(reqs, tmp_path):
    path = envs.env_path("tool", reqs / "tool.txt", tmp_path / "root")
    assert path.parent == tmp_path / "root" and path.name.startswith("tool-")
    (reqs / "tool.txt").write_text("pandas==2.3.3\npyarrow==21.0.0\n")
    other = envs.env_path("tool", reqs / "tool.txt", tmp_path / "root")
    assert other != path and other.parent == path.parent


def test_envs_root_follows_the_environment_variable(monkeypatch, tmp_path):
    monkeypatch.setenv("SYNLLM_ENVS_DIR", str(tmp_path / "x"))
    assert envs.envs_root() == tmp_path / "x"
    monkeypatch.delenv("SYNLLM_ENVS_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert envs.envs_root() == tmp_path / "cache" / "synllm" / "envs"


def test_every_shipped_environment_pins_every_package(root):
    files = sorted((root / "envs").glob("*.txt"))
    assert files
    for f in files:
        lines = [ln for ln in f.read_text().splitlines() if ln and not ln.startswith("#")]
        assert lines and all("==" in ln for ln in lines), f.name
        torch = [ln for ln in lines if ln.startswith("torch==")]
        # another torch than the one pip finds on disk here is a multi-GB download
        assert torch in ([], ["torch==2.13.0"]), f.name
        mirror = f.with_suffix(".yaml").read_text()
        assert all(f"- {ln}" in mirror for ln in lines), f"{f.with_suffix('.yaml').name} differs"


def test_a_missing_environment_names_the_command_that_builds_it(reqs, monkeypatch, tmp_path):
    monkeypatch.setenv("SYNLLM_ENVS_DIR", str(tmp_path / "root"))
    with pytest.raises(envs.EnvError) as err:
        envs.python_for("tool", requirements=reqs / "tool.txt")
    msg = str(err.value)
    assert "\n" not in msg and "is not built" in msg and "synllm envs build tool" in msg


def test_an_interrupted_build_is_not_a_built_environment(reqs, monkeypatch, tmp_path):
    monkeypatch.setenv("SYNLLM_ENVS_DIR", str(tmp_path / "root"))
    path = envs.env_path("tool", reqs / "tool.txt")
    (path / "bin").mkdir(parents=True)
    (path / "bin" / "python").write_text("")
    assert envs.read_marker(path) is None  # no marker: pip never finished
    with pytest.raises(envs.EnvError, match="is not built"):
        envs.python_for("tool", requirements=reqs / "tool.txt")
    (path / envs.MARKER).write_text(json.dumps({"name": "tool"}))
    assert envs.python_for("tool", requirements=reqs / "tool.txt") == path / "bin" / "python"


def test_the_stamp_points_at_the_environment(tmp_path):
    with pytest.raises(envs.EnvError, match="stamp .* is missing"):
        envs.python_for("tool", stamp=tmp_path / "none.json")
    env = tmp_path / "tool-abc"
    (env / "bin").mkdir(parents=True)
    (env / "bin" / "python").write_text("")
    stamp = tmp_path / "tool.json"
    stamp.write_text(json.dumps({"path": str(env)}))
    with pytest.raises(envs.EnvError, match="synllm envs build tool"):
        envs.python_for("tool", stamp=stamp)  # the folder was deleted after the stamp
    (env / envs.MARKER).write_text("{}")
    assert envs.python_for("tool", stamp=stamp) == env / "bin" / "python"


def test_an_unknown_name_is_one_line_listing_the_known(reqs, capsys):
    with pytest.raises(ConfigError, match=r"no requirements file .*known: \['tool'\]"):
        envs.requirements_file("nope", reqs)
    assert main(["envs", "build", "nope", "--envs-dir", str(reqs)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
