"""Platform presets (resources/platforms.toml) and the system-call table (resources/syscalls.json):
the data is consistent, `resolve()` picks the strictest of several presets, and the generated
table is what tools/gen_syscalls.py makes from the installed man-pages and kernel headers."""

from __future__ import annotations

import copy
import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest

from orchestrator import paths, platforms, syscalls
from orchestrator.cli import main
from orchestrator.errors import UsageError
from orchestrator.glibc import GlibcVersion
from orchestrator.platforms import IsaLevel, parse_node, resolve
from orchestrator.syscalls import KernelVersion

from .conftest import IN_CI, REPO

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

RAW = tomllib.loads(platforms.PLATFORMS_TOML.read_text(encoding="utf-8"))
ROWS = RAW["platform"]
POLICY = json.loads((REPO / "orchestrator" / "resources" / "policy.json").read_text())
RUST_FLOOR = GlibcVersion(2, 17)

# What issue 12 asks the table to hold, by the names people write.
REQUIRED = [
    "centos-7",
    "rhel-8",
    "rhel-9",
    "rhel-10",
    *(f"debian-{n}" for n in range(8, 14)),
    *(f"ubuntu-{v}" for v in ("14.04", "16.04", "18.04", "20.04", "22.04", "24.04")),
    "sles-12-sp5",
    "sles-15-sp3",
    "amazonlinux-2",
    "amazonlinux-2023",
    "manylinux2014",
    "manylinux_2_28",
    "manylinux_2_34",
    "steam-scout",
    "steam-soldier",
    "steam-sniper",
    "steamrt4",
    "godot-4",
    "buster",
    "bionic",
    "jessie",
]


def k(text: str) -> KernelVersion:
    return KernelVersion.parse(text)


def node(text: str) -> GlibcVersion:
    return parse_node(text)


# -- the data file ------------------------------------------------------------------------
@pytest.mark.unit
@pytest.mark.parametrize("name", REQUIRED)
def test_required_presets_resolve(name: str) -> None:
    assert resolve(name).glibc >= GlibcVersion(2, 15)


@pytest.mark.unit
def test_names_and_aliases_are_unique_and_never_collide() -> None:
    keys = [row["name"] for row in ROWS] + [a for row in ROWS for a in row.get("aliases", [])]
    assert len(keys) == len(set(keys)), sorted(k for k in keys if keys.count(k) > 1)
    assert all(key == key.lower() and " " not in key for key in keys)


@pytest.mark.unit
@pytest.mark.parametrize("row", ROWS, ids=[row["name"] for row in ROWS])
def test_each_row_matches_what_is_loaded_and_cites_a_source_per_fact(row: dict) -> None:
    loaded = resolve(row["name"])
    assert str(loaded.glibc) == row["glibc"]  # parses, and round-trips
    assert (str(loaded.kernel) if loaded.kernel else None) == row.get("kernel")
    assert str(loaded.isa) == row.get("isa", "x86-64-v1")
    for ns in platforms.CXX_NAMESPACES:
        ceiling = loaded.cxx_ceiling(ns)
        assert (str(ceiling) if ceiling else None) == row.get(ns)
    facts = set(platforms.FACTS) & ({*row} | ({"cxx"} if "GLIBCXX" in row else set()))
    assert facts <= set(row["sources"]), f"{row['name']}: unsourced {facts - set(row['sources'])}"
    assert all(url.startswith("https://") for url in row["sources"].values())
    assert loaded.what and loaded.source("isa")  # the baseline cites the psABI


@pytest.mark.unit
def test_cxx_ceilings_agree_with_policy_defaults_for_the_same_glibc() -> None:
    """policy.json keeps the defaults for a bare --glibc X.Y; a preset with that very glibc
    must not contradict it, on x86_64 nor where policy.json overrides an architecture."""
    defaults = {entry["glibc"]: entry for entry in POLICY["cxx_runtime"]["ceilings"]}
    compared = 0
    for platform in platforms.presets():
        entry = defaults.get(str(platform.glibc))
        if entry is None or not platform.cxx:
            continue
        for ns in platforms.CXX_NAMESPACES:
            assert platform.cxx_ceiling(ns) == node(entry[ns]), (platform.name, ns)
            for arch, override in entry.get("arch", {}).items():
                expected = node(override.get(ns, entry[ns]))
                assert platform.cxx_ceiling(ns, arch) == expected, (platform.name, arch, ns)
        compared += 1
    assert compared >= 10


@pytest.mark.unit
def test_node_versions_ignore_trailing_zeros_but_print_as_written() -> None:
    assert node("14.0") == node("14.0.0") and str(node("14.0")) == "14.0"
    assert node("4.7.0") < node("4.8.0") < node("7.0.0") < node("11.0") < node("12.0.0")
    assert node("3.4.9") < node("3.4.19")


@pytest.mark.unit
def test_known_facts_of_well_known_presets() -> None:
    assert (resolve("centos-7").glibc, resolve("centos-7").kernel) == (RUST_FLOOR, k("3.10"))
    assert resolve("rhel-9").isa == IsaLevel(2) and resolve("rhel-10").isa == IsaLevel(3)
    assert resolve("steam-scout").glibc < RUST_FLOOR  # checkable, not buildable
    assert resolve("steam-sniper").kernel is None  # the container runs on the host kernel
    assert resolve("godot-4").glibc == GlibcVersion(2, 28)
    assert resolve("manylinux2014").cxx_ceiling("GLIBCXX") == node("3.4.19")


# -- resolve() ----------------------------------------------------------------------------
@pytest.mark.unit
def test_resolve_alias_and_name_give_the_same_platform() -> None:
    assert resolve("buster") == resolve("debian-10") == resolve(" Debian-10 ")
    assert resolve("bionic").name == "ubuntu-18.04"


@pytest.mark.unit
def test_resolve_bare_glibc_version() -> None:
    bare = resolve("2.17")
    assert bare.glibc == RUST_FLOOR and bare.kernel is None and bare.cxx == ()
    assert resolve("2.28.0").glibc == GlibcVersion(2, 28)


@pytest.mark.unit
def test_combination_takes_the_strictest_of_each_fact() -> None:
    both = resolve("rhel-9,debian-12")  # 2.34/5.14/v2/GCC_7 vs 2.36/6.1/v1/GCC_12
    assert both.glibc == GlibcVersion(2, 34)
    assert both.kernel == k("5.14")
    assert both.isa == IsaLevel(1)
    assert both.cxx_ceiling("GLIBCXX") == node("3.4.29")
    assert both.cxx_ceiling("GCC") == node("7.0.0")
    assert both.members == ("rhel-9", "debian-12")
    assert "rhel-9:glibc" in dict(both.sources)


@pytest.mark.unit
def test_combination_keeps_a_fact_only_one_member_knows() -> None:
    mixed = resolve("steam-sniper,centos-7")
    assert mixed.glibc == RUST_FLOOR
    assert mixed.kernel == k("3.10")  # sniper promises no kernel
    assert mixed.cxx_ceiling("CXXABI") is None  # sniper's are unknown: defaults
    # debian-8's C++ runtime is not in the table: debian-10's GLIBCXX_3.4.24 would be too lax.
    assert resolve("debian-8,debian-10").cxx == ()
    assert resolve("debian-8,debian-10").cxx_arch == ()
    assert resolve("centos-7,rhel-7") == resolve("centos-7")  # one preset twice is itself
    assert resolve("2.12,centos-7").glibc == GlibcVersion(2, 12)


@pytest.mark.unit
def test_strictest_is_taken_per_architecture_too() -> None:
    """CentOS 7's aarch64 libgcc_s stops at GCC_4.7.0 (auditwheel's manylinux2014 aarch64):
    combined with RHEL 9 the aarch64 ceiling is that, while x86_64 keeps GCC_4.8.0."""
    both = resolve("rhel-9,centos-7")
    assert both.cxx_ceiling("GCC") == node("4.8.0")
    assert both.cxx_ceiling("GCC", "aarch64-linux-gnu") == node("4.7.0")
    assert resolve("rhel-9").cxx_ceiling("GCC", "aarch64-linux-gnu") == node("11.0")
    assert resolve("rhel-9").cxx_ceiling("GCC", "powerpc64le-linux-gnu") == node("7.0.0")
    al2 = resolve("amazonlinux-2,debian-10")
    assert al2.cxx_ceiling("GLIBCXX", "aarch64-linux-gnu") == node("3.4.24")
    assert al2.cxx_ceiling("GLIBCXX") == node("3.4.22")


@pytest.mark.unit
@pytest.mark.parametrize(
    "text, close",
    [
        ("centos7", "centos-7"),
        ("ubuntu-18.4", "ubuntu-18.04"),
        ("steam-snipper", "steam-sniper"),
        ("centos-7,bustr", "buster"),
    ],
)
def test_unknown_platform_is_bad_input_naming_the_closest(text: str, close: str) -> None:
    with pytest.raises(UsageError) as caught:
        resolve(text)
    assert caught.value.exit_code == 2
    assert close in caught.value.message


@pytest.mark.unit
@pytest.mark.parametrize(
    "text, needle",
    [("", "--glibc is empty"), (" , ", "--glibc is empty"), ("qnx-7", "unknown platform 'qnx-7'")],
)
def test_empty_or_far_off_names_are_bad_input(text: str, needle: str) -> None:
    with pytest.raises(UsageError) as caught:
        resolve(text)
    assert needle in caught.value.message and caught.value.exit_code == 2


# -- base-system libraries (issue 13) ---------------------------------------------------
def _lib_whitelist(policy_name: str) -> set[str]:
    """auditwheel's own list for a manylinux policy, from the installed package's data."""
    spec = importlib.util.find_spec("auditwheel")
    if spec is None or spec.origin is None:
        pytest.skip("auditwheel is not installed (a test dependency)")
    path = Path(spec.origin).parent / "policy" / "manylinux-policy.json"
    [entry] = [e for e in json.loads(path.read_text()) if e["name"] == policy_name]
    return set(entry["lib_whitelist"])


@pytest.mark.unit
@pytest.mark.parametrize(
    "preset, policy_name",
    [
        ("manylinux2014", "manylinux_2_17"),
        ("manylinux_2_28", "manylinux_2_28"),
        ("manylinux_2_34", "manylinux_2_34"),
    ],
)
def test_manylinux_base_libraries_are_auditwheels_list(preset: str, policy_name: str) -> None:
    loaded = resolve(preset)
    assert loaded.libraries == _lib_whitelist(policy_name)
    assert loaded.libraries_of == (preset,)
    assert "auditwheel" in (loaded.source("libraries") or "")


@pytest.mark.unit
def test_base_libraries_are_only_given_where_known() -> None:
    known = sorted(p.name for p in platforms.presets() if p.libraries is not None)
    assert known == ["manylinux2014", "manylinux_2_28", "manylinux_2_34"]
    assert resolve("centos-7").libraries is None and resolve("2.17").libraries is None


@pytest.mark.unit
def test_combination_base_libraries_are_the_intersection_of_the_known_lists() -> None:
    both = resolve("manylinux_2_34,manylinux2014")
    assert both.libraries == resolve("manylinux2014").libraries  # no libmvec.so.1 on 2014
    assert "libmvec.so.1" in (resolve("manylinux_2_34").libraries or set())
    assert both.libraries_of == ("manylinux_2_34", "manylinux2014")
    with_unknown = resolve("steam-sniper,manylinux_2_28")
    assert with_unknown.libraries == resolve("manylinux_2_28").libraries
    assert with_unknown.libraries_of == ("manylinux_2_28",)
    assert resolve("centos-7,steam-sniper").libraries is None


# -- the loader refuses a bad table ---------------------------------------------------------
def _broken(change) -> dict:
    data = copy.deepcopy(RAW)
    change(data)
    return data


@pytest.mark.unit
@pytest.mark.parametrize(
    "change, needle",
    [
        (lambda d: d["platform"][1]["aliases"].append("rhel-7"), "names both"),
        (lambda d: d["platform"][0]["sources"].pop("kernel"), "no source for kernel"),
        (lambda d: d["platform"][0].update(glibc="2.x"), "not a glibc version"),
        (lambda d: d["platform"][0].update(kernel="3"), "not a Linux kernel version"),
        (
            lambda d: (
                d["platform"][0].update(isa="x86-64-v9"),
                d["platform"][0]["sources"].update(isa="https://example.org"),
            ),
            "not an x86-64 level",
        ),
        (lambda d: d["platform"][0].update(isa="x86-64-v2"), "no source for isa"),
        (lambda d: d["platform"][0].pop("GCC"), "give all of"),
        (lambda d: d["platform"][0]["aliases"].append("2.17"), "read as a glibc version"),
        (lambda d: d["platform"][0].update(glibc=2.17), "quoted string"),
        (lambda d: d["platform"][0]["sources"].update(glibc="vault.centos.org"), "https URL"),
        (lambda d: d["platform"][0].update(colour="red"), "unknown keys colour"),
        (lambda d: d["platform"][0].update(arch={"aarch64": {"GCC": "4.7.0"}}), "arch 'aarch64'"),
        (
            lambda d: d["platform"][0].update(arch={"aarch64-linux-gnu": {"GCC": 4.7}}),
            "quoted strings",
        ),
        (
            lambda d: d["platform"][4].update(arch={"aarch64-linux-gnu": {"GCC": "4.7.0"}}),
            "need the row's own",
        ),
        (lambda d: d["platform"][0].update(libraries=["libz.so.1"]), "no source for libraries"),
        (
            lambda d: (
                d["platform"][0].update(libraries=["zlib"]),
                d["platform"][0]["sources"].update(libraries="https://example.org"),
            ),
            "list of sonames",
        ),
        (
            lambda d: (
                d["platform"][0].update(libraries="libz.so.1"),
                d["platform"][0]["sources"].update(libraries="https://example.org"),
            ),
            "list of sonames",
        ),
        (
            lambda d: (
                d["platform"][0].update(libraries=["libz.so.1", "libz.so.1"]),
                d["platform"][0]["sources"].update(libraries="https://example.org"),
            ),
            "twice",
        ),
    ],
)
def test_table_is_validated_on_load(change, needle: str) -> None:
    with pytest.raises(UsageError) as caught:
        platforms.parse_table(_broken(change))
    assert needle in caught.value.message and "platforms.toml" in caught.value.message


# -- the parsed table in the cache ----------------------------------------------------------
@pytest.fixture
def fresh_table(tmp_path, monkeypatch):
    """table() loaded anew with the cache in `tmp_path`."""
    monkeypatch.setenv("GLIBC_BUILD_CACHE", str(tmp_path))
    platforms.table.cache_clear()
    yield tmp_path / "platforms"
    platforms.table.cache_clear()


def _no_toml(text: str) -> dict:
    raise AssertionError("the TOML was parsed although the cache holds it")


@pytest.mark.unit
def test_the_parsed_table_is_cached_and_read_back(fresh_table: Path, monkeypatch) -> None:
    first = platforms.table()
    (cached,) = fresh_table.iterdir()
    assert json.loads(cached.read_text()) == RAW
    platforms.table.cache_clear()
    monkeypatch.setattr(platforms, "_parse_toml", _no_toml)
    assert platforms.table() == first


@pytest.mark.unit
@pytest.mark.parametrize(
    "damage", ["", "{not json", "[]", json.dumps({"platform": []}), json.dumps({**RAW, "about": 1})]
)
def test_a_damaged_cache_is_made_again_never_trusted(fresh_table: Path, damage: str) -> None:
    """A cache that is not JSON, or whose data fails the table's validation, is parsed again
    from the TOML (never an error naming platforms.toml for a file that is fine)."""
    first = platforms.table()
    (cached,) = fresh_table.iterdir()
    cached.write_text(damage)
    platforms.table.cache_clear()
    assert platforms.table() == first
    assert json.loads(cached.read_text()) == RAW


@pytest.mark.unit
def test_an_edited_table_is_parsed_under_a_new_key(fresh_table: Path, tmp_path, monkeypatch):
    platforms.table()
    edited = tmp_path / "platforms.toml"
    edited.write_text(
        platforms.PLATFORMS_TOML.read_text().replace('what = "RHEL / CentOS 7"', 'what = "EL 7"', 1)
    )
    monkeypatch.setattr(platforms, "PLATFORMS_TOML", edited)
    platforms.table.cache_clear()
    assert platforms.resolve("centos-7").what == "EL 7"
    assert len(list(fresh_table.iterdir())) == 2


@pytest.mark.unit
def test_without_a_writable_cache_the_table_still_loads(tmp_path, monkeypatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("GLIBC_BUILD_CACHE", str(blocker))  # a file: no folder can be made
    platforms.table.cache_clear()
    try:
        assert resolve("centos-7").glibc == GlibcVersion(2, 17)
    finally:
        platforms.table.cache_clear()


@pytest.mark.unit
def test_without_a_home_for_the_cache_the_table_still_loads(monkeypatch) -> None:
    def no_home(*parts: str) -> Path:
        raise RuntimeError("Could not determine home directory.")  # Path.home() without one

    monkeypatch.setattr(paths, "cache_dir", no_home)
    platforms.table.cache_clear()
    try:
        assert resolve("centos-7").glibc == GlibcVersion(2, 17)
    finally:
        platforms.table.cache_clear()


# -- kernel versions ------------------------------------------------------------------------
@pytest.mark.unit
def test_kernel_version_parse_and_order() -> None:
    assert k("2.6.16") < k("2.6.39") < k("3.0") < k("3.10") < k("4.5") < k("5.10")
    assert str(k("3.10")) == "3.10" and str(k("2.6.16")) == "2.6.16"
    assert k("3.10.0") == k("3.10")


@pytest.mark.unit
@pytest.mark.parametrize("text", ["3", "3.x", "v3.10", "", "3.10-rc1"])
def test_kernel_version_error_names_the_input(text: str) -> None:
    with pytest.raises(UsageError) as caught:
        KernelVersion.parse(text)
    assert repr(text) in caught.value.message and "--kernel" in caught.value.message


# -- system calls -------------------------------------------------------------------------
@pytest.mark.unit
@pytest.mark.parametrize(
    "name, first",
    [
        ("getrandom", "3.17"),
        ("memfd_create", "3.17"),
        ("copy_file_range", "4.5"),
        ("statx", "4.11"),
        ("pidfd_open", "5.3"),
        ("clone3", "5.3"),
        ("close_range", "5.9"),
        ("getxattr", "2.4.18"),
    ],
)
def test_first_kernel(name: str, first: str) -> None:
    assert syscalls.first_kernel(name) == k(first)


@pytest.mark.unit
def test_syscall_numbers_both_ways() -> None:
    assert syscalls.number("getrandom", "x86_64") == 318
    assert syscalls.number("getrandom", "aarch64") == 278
    assert syscalls.number("fcntl", "aarch64") == 25  # via __NR3264_fcntl
    assert syscalls.number("arch_prctl", "aarch64") is None  # x86 only
    assert syscalls.name_of(318, "x86_64") == "getrandom"
    assert syscalls.name_of(435, "aarch64") == "clone3"
    assert syscalls.name_of(9999, "x86_64") is None


@pytest.mark.unit
def test_unknown_syscall_or_architecture_is_bad_input() -> None:
    with pytest.raises(UsageError, match="not a Linux system call"):
        syscalls.first_kernel("getrandomm")
    with pytest.raises(UsageError, match="riscv64"):
        syscalls.number("getrandom", "riscv64")


@pytest.mark.unit
def test_madvise_advice_first_kernel() -> None:
    assert syscalls.madvise_first_kernel("MADV_FREE") == k("4.5")
    assert syscalls.madvise_first_kernel("MADV_DONTDUMP") == k("3.4")
    assert syscalls.madvise_first_kernel("MADV_WIPEONFORK") == k("4.14")
    assert syscalls.table().madvise_values["MADV_FREE"] == 8


@pytest.mark.unit
def test_missing_on_centos7_kernel() -> None:
    missing = {call.name for call in syscalls.missing_on(resolve("centos-7").kernel or k("0.0"))}
    assert {"getrandom", "memfd_create", "statx", "copy_file_range", "clone3"} <= missing
    assert not {"read", "openat", "futex", "clone", "mmap"} & missing


@pytest.mark.unit
def test_allowed_numbers_is_an_allow_list_for_the_floor() -> None:
    on_310 = syscalls.allowed_numbers(k("3.10"), "x86_64")
    assert {0, 1, 2, 9, 56, 202} <= on_310  # read write open mmap clone futex
    assert 318 not in on_310 and 332 not in on_310  # getrandom (3.17), statx (4.11)
    assert 318 in syscalls.allowed_numbers(k("3.17"), "x86_64")
    assert 183 not in syscalls.allowed_numbers(k("6.1"), "x86_64")  # afs_syscall: no age


@pytest.mark.unit
def test_syscall_table_is_validated_on_load() -> None:
    data = json.loads(syscalls.SYSCALLS_JSON.read_text())
    data["syscalls"]["statx"]["numbers"]["x86_64"] = 318  # getrandom's number
    with pytest.raises(UsageError, match="both"):
        syscalls.parse_table(data)


# -- the CLI ------------------------------------------------------------------------------
@pytest.mark.unit
def test_platforms_command_json_lists_every_preset_with_sources(capsys) -> None:
    assert main(["platforms", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [p["name"] for p in listed] == [row["name"] for row in ROWS]
    assert all(p["sources"]["glibc"].startswith("https://") for p in listed)


@pytest.mark.unit
def test_platforms_command_text(capsys) -> None:
    assert main(["platforms", "--sources"]) == 0
    out = capsys.readouterr().out
    assert "centos-7" in out and "3.10" in out and "x86-64-v3" in out
    assert "https://access.redhat.com/articles/3078" in out


# -- the generator ------------------------------------------------------------------------
def test_generator_gives_the_committed_table() -> None:
    """Re-running tools/gen_syscalls.py on this machine's manpages-dev and linux-libc-dev gives
    the committed JSON (so the data is reproducible from what it names as its sources)."""
    missing = [
        path
        for path in ("/usr/share/man/man2/syscalls.2.gz", "/usr/include/asm-generic/unistd.h")
        if not Path(path).is_file()
    ] + ([] if shutil.which("cpp") else ["cpp"])
    if missing:
        if IN_CI:
            pytest.fail(f"CI=true and {', '.join(missing)} missing (manpages-dev, linux-libc-dev)")
        pytest.skip(f"{', '.join(missing)} missing")
    committed = json.loads(syscalls.SYSCALLS_JSON.read_text())
    script = REPO / "tools" / "gen_syscalls.py"
    spec = importlib.util.spec_from_file_location("gen_syscalls", script)
    assert spec and spec.loader
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    generated = json.loads(generator.render(generator.generate()))
    # A Debian point release may bump the package versions named in "sources"; the facts
    # must not move (they would mean: regenerate with tools/gen_syscalls.py).
    for key in ("architectures", "syscalls", "madvise"):
        assert generated[key] == committed[key], f"{key} differs: run tools/gen_syscalls.py"
    assert generated["sources"].keys() == committed["sources"].keys()
