"""Issue 13: a DT_NEEDED library outside a platform preset's known base system (the manylinux
tags' PEP 599/600 list) is a warning naming the preset; glibc's libraries and the C/C++
runtime never are, and a preset without a known list keeps the general warning."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from orchestrator.check.policy import load_policy
from orchestrator.check.report import WARNING
from orchestrator.check.rules.context import Context
from orchestrator.check.rules.needed import check_needed
from orchestrator.glibc import GlibcVersion
from orchestrator.platforms import resolve
from orchestrator.targets import lookup

from .conftest import library_using_libasound, run_tool
from .test_check import need_tool

OUTSIDE = "is not part of manylinux2014's base system: every target machine must install it"


def _findings(needed: list[str], preset: str | None) -> list:
    platform = resolve(preset) if preset else None
    ctx = Context.make(
        target=lookup("x86_64-unknown-linux-gnu"),
        glibc=GlibcVersion(2, 17),
        policy=load_policy(),
        table=None,
        base_libraries=platform.libraries if platform else None,
        base_system=", ".join(platform.libraries_of) if platform else None,
    )
    return list(check_needed(SimpleNamespace(needed=needed), ctx))  # type: ignore[arg-type]


@pytest.mark.unit
def test_a_library_outside_the_base_system_is_a_warning_naming_the_preset():
    [finding] = _findings(["libc.so.6", "libasound.so.2"], "manylinux2014")
    assert (finding.kind, finding.severity, finding.library) == (
        "needed-library",
        WARNING,
        "libasound.so.2",
    )
    assert finding.message.startswith(f"libasound.so.2 {OUTSIDE}")


@pytest.mark.unit
def test_base_system_glibc_and_runtime_libraries_give_no_warning():
    needed = [
        "libc.so.6",
        "libm.so.6",
        "libstdc++.so.6",
        "libgcc_s.so.1",
        "libz.so.1",
        "libX11.so.6",
        "libGL.so.1",
    ]
    assert _findings(needed, "manylinux2014") == []


@pytest.mark.unit
def test_without_a_known_list_the_general_warning_stays():
    for preset in ("centos-7", None):
        [finding] = _findings(["libasound.so.2"], preset)
        assert "not part of glibc or the C/C++ runtime" in finding.message
        assert "base system" not in finding.message
    [finding] = _findings(["libz.so.1"], "centos-7")  # no list: even zlib is not promised
    assert finding.library == "libz.so.1"


@pytest.mark.unit
def test_a_combination_names_the_presets_whose_lists_are_known():
    [finding] = _findings(["libasound.so.2"], "steam-sniper,manylinux2014")
    assert finding.message.startswith(f"libasound.so.2 {OUTSIDE}")


def test_check_warns_about_libasound_under_manylinux2014_only(tmp_path: Path):
    need_tool("gcc")
    user = library_using_libasound(tmp_path)
    warned = run_tool("check", "--json", "--glibc", "manylinux2014", user)
    assert warned.returncode == 0, warned.stdout + warned.stderr
    assert f"libasound.so.2 {OUTSIDE}" in warned.stdout, warned.stdout
    quiet = run_tool("check", "--json", "--glibc", "centos-7", tmp_path / "user.so")
    assert quiet.returncode == 0, quiet.stdout + quiet.stderr
    assert "base system" not in quiet.stdout
    assert "libasound.so.2" in json.dumps(json.loads(quiet.stdout))  # the general warning
