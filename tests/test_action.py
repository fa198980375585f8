"""action.yml, the composite GitHub Action: its inputs are used, its outputs set, its commands
real; and its build step, run by bash as the runner runs it, against the installed wheel.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import EXAMPLES, REPO
from tests.test_packaging import PYPROJECT, installed  # noqa: F401 - the fixture

ACTION = yaml.safe_load((REPO / "action.yml").read_text())
RELEASE = yaml.safe_load((EXAMPLES / "ci" / "release.yml").read_text())
EXPRESSION = re.compile(r"\$\{\{\s*([^}]*?)\s*\}\}")
SCRIPT = next(iter(PYPROJECT["project"]["scripts"]))  # the console script's name


def _steps() -> list[dict]:
    return ACTION["runs"]["steps"]


def _expressions(value: object) -> list[str]:
    return EXPRESSION.findall(yaml.safe_dump(value))


@pytest.mark.unit
def test_composite_action_with_the_issue_inputs_and_outputs():
    assert ACTION["runs"]["using"] == "composite"
    assert set(ACTION["inputs"]) == {"crate", "glibc", "verify-on", "args"}
    assert set(ACTION["outputs"]) == {"out-dir", "manifest"}
    for name, spec in {**ACTION["inputs"], **ACTION["outputs"]}.items():
        assert spec.get("description"), name


@pytest.mark.unit
def test_every_input_is_used_and_only_through_env():
    """Each input reaches a step as an environment variable, never spliced into a script
    (where a value could run as shell code)."""
    used = set()
    for step in _steps():
        assert not any(e.startswith("inputs.") for e in _expressions(step.get("run", ""))), step
        used |= {
            e.removeprefix("inputs.")
            for e in _expressions(step.get("env", {}))
            if e.startswith("inputs.")
        }
    assert used == set(ACTION["inputs"])


@pytest.mark.unit
def test_every_output_is_set_by_its_step():
    ids = {step.get("id"): step for step in _steps()}
    for name, spec in ACTION["outputs"].items():
        (expression,) = _expressions(spec["value"])
        kind, step_id, outputs, output = expression.split(".")
        assert (kind, outputs, output) == ("steps", "outputs", name)
        assert f'print(f"{name}=' in ids[step_id]["run"]
        assert '>> "$GITHUB_OUTPUT"' in ids[step_id]["run"]


@pytest.mark.unit
def test_steps_run_the_console_script_the_wheel_installs():
    install, build = _steps()
    assert "${{ github.action_path }}" in install["env"].values()
    assert "-m pip install" in install["run"] and '"$ACTION_PATH"' in install["run"]
    assert f'"$VENV/bin/{SCRIPT}"' in install["run"]
    assert f'command=("$VENV/bin/{SCRIPT}")' in build["run"]
    assert "--json" in build["run"]
    assert install["env"]["VENV"] == build["env"]["VENV"]
    for step in _steps():
        assert step["shell"] == "bash"


@pytest.mark.unit
def test_release_example_uses_the_action_and_its_outputs():
    steps = RELEASE["jobs"]["plugin"]["steps"]
    (action,) = [s for s in steps if str(s.get("uses", "")).endswith("/glibc-build@v1")]
    assert set(action["with"]) <= set(ACTION["inputs"])
    used = {e for s in steps for e in _expressions(s)}
    assert {
        f"steps.{action['id']}.outputs.out-dir",
        f"steps.{action['id']}.outputs.manifest",
    } <= used


def _github_context(text: str, context: dict[str, str]) -> str:
    return EXPRESSION.sub(lambda m: context[m.group(1)], text)


@pytest.mark.slow
@pytest.mark.parametrize("args", ["", "--out 'out dir/2.17'"])
def test_build_step_sets_the_outputs(installed, tmp_path, args):  # noqa: F811
    """The build step's script, run the way the runner runs a `shell: bash` step, with the
    wheel's venv in place of the one the install step makes."""
    crate = tmp_path / "plugin"
    shutil.copytree(EXAMPLES / "plugin", crate, ignore=shutil.ignore_patterns("target", "dist"))
    runner_temp = tmp_path / "runner"
    runner_temp.mkdir()
    (runner_temp / "glibc-build-venv").symlink_to(installed.parent)
    output = tmp_path / "github_output"
    output.write_text("")
    context = {
        "runner.temp": str(runner_temp),
        "inputs.crate": "plugin",
        "inputs.glibc": "2.17",
        "inputs.verify-on": "",
        "inputs.args": args,
    }
    _, build = _steps()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GLIBC_BUILD_")}
    env.update({key: _github_context(value, context) for key, value in build["env"].items()})
    env.update(RUNNER_TEMP=str(runner_temp), GITHUB_OUTPUT=str(output), NO_COLOR="1")
    script = tmp_path / "step.sh"
    script.write_text(build["run"])
    proc = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr
    outputs = dict(line.split("=", 1) for line in output.read_text().splitlines())
    out_dir = crate / "dist" / "glibc-2.17" if not args else tmp_path / "out dir" / "2.17"
    assert Path(outputs["out-dir"]).resolve() == out_dir.resolve()
    assert Path(outputs["manifest"]).resolve() == (out_dir / "build-manifest.json").resolve()
    assert Path(outputs["manifest"]).is_file()
