"""Recipes: TOML files in recipes/ that say which old-distro image to build and from what.

A recipe is data, checked strictly here so that a typo fails at once with the file and the
key named (exit 2), never half-way through an image build. `load_recipe`, `check_glibc` and
`Recipe.digest` are what the Docker backend uses. The schema (unknown keys are refused):

    name = "debian-bullseye"            # [a-z0-9._-]; part of the image tag
    description = "..."
    glibc = "2.31"                      # the base's glibc: the oldest target it can serve
    template = "debian.Dockerfile.j2"   # a file in dockerfiles/
    packages = ["gcc"]                  # top level, before the first [table]
    [base]
    image = "debian:bullseye"           # FROM
    debootstrap = { suite = "bullseye", variant = "minbase", include = [...], mirror = "..." }
    [env]                               # ENV of the image: NAME = "value"
    [toolchain]                         # free-form strings: versions, rust = "host", ...
    [[sources]]                         # files fetched into rsrc/ (see Source)
    name, url, mirrors, filename, sha256, signature, checksums, checksums_signature,
    keys, fingerprints
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from .errors import RecipeError, UsageError
from .glibc import GlibcVersion
from .paths import DEFAULT_RSRC, KEYS_DIR, RECIPES_DIR, TEMPLATES_DIR, is_url
from .signatures import normalize_fingerprint

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib  # type: ignore[no-redef,import-not-found,unused-ignore]


_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_FILENAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+~-]*$")
_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PACKAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+:~@=-]*$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_IMAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@-]*$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # a newline would end a Dockerfile line early

_TOP_KEYS = {
    "name",
    "description",
    "glibc",
    "template",
    "base",
    "env",
    "toolchain",
    "packages",
    "sources",
}
_BASE_KEYS = {"image", "debootstrap"}
_DEBOOTSTRAP_KEYS = {"suite", "variant", "include", "mirror", "components", "arch"}
_SOURCE_KEYS = {
    "name",
    "url",
    "mirrors",
    "filename",
    "sha256",
    "signature",
    "checksums",
    "checksums_signature",
    "keys",
    "fingerprints",
}


def url_filename(url: str) -> str:
    """The last segment of a URL's path: where the file lands in rsrc/."""
    return unquote(urlsplit(url).path.rsplit("/", 1)[-1])


@dataclass(frozen=True)
class Source:
    """One file the image needs, and how to know it is the right one.

    Verified by any of: `sha256` (pinned here), `signature` (detached, over the file), or a
    signed checksum list (`checksums` + `checksums_signature`, matched by exact file name).
    Signatures count only when made by a key whose primary fingerprint is in `fingerprints`.
    `keys` are local files (resolved) or URLs. Mirrors are full URLs of the same file; a
    companion file (signature, list) is looked for in the same folder on each mirror.
    """

    name: str
    url: str
    filename: str
    mirrors: tuple[str, ...] = ()
    sha256: str | None = None
    signature: str | None = None
    checksums: str | None = None
    checksums_signature: str | None = None
    keys: tuple[str, ...] = ()
    fingerprints: tuple[str, ...] = ()

    @property
    def upstream_filename(self) -> str:
        """The name upstream gives the file (what a checksum list calls it)."""
        return url_filename(self.url)

    @property
    def signature_filename(self) -> str | None:
        return url_filename(self.signature) if self.signature else None

    @property
    def checksums_filename(self) -> str | None:
        return url_filename(self.checksums) if self.checksums else None

    @property
    def checksums_signature_filename(self) -> str | None:
        return url_filename(self.checksums_signature) if self.checksums_signature else None

    @property
    def companion_filenames(self) -> list[str]:
        """Files kept beside the source in rsrc/ to re-verify it later (offline too)."""
        names = [
            self.signature_filename,
            self.checksums_filename,
            self.checksums_signature_filename,
        ]
        return [n for n in names if n]

    @property
    def signed(self) -> bool:
        return bool(self.signature or self.checksums)


@dataclass(frozen=True)
class Recipe:
    """A loaded, validated recipe. `raw` and `template_text` are the bytes `digest` covers."""

    name: str
    description: str
    path: Path
    glibc: GlibcVersion
    template: str
    template_path: Path
    base_image: str
    debootstrap: dict[str, Any] | None
    env: dict[str, str]
    toolchain: dict[str, str]
    packages: list[str]
    sources: list[Source]
    raw: bytes = field(repr=False)
    template_text: str = field(repr=False)
    # The name or path the user gave, for advice such as "run `build.py fetch --recipe ...`".
    given: str = field(default="", compare=False)
    # Packages a crate adds to the image (`image-packages` in its metadata); the templates
    # install them, so the rendered Dockerfile, and with it the image tag, changes with them.
    image_packages: tuple[str, ...] = ()

    def digest(self) -> str:
        """sha256 over the recipe file and its template (each length-prefixed): the image tag.

        Files fetched by signature only are not covered: hash what you send to the engine too.
        """
        hasher = hashlib.sha256()
        for part in (self.raw, self.template_text.encode("utf-8")):
            hasher.update(len(part).to_bytes(8, "big"))
            hasher.update(part)
        return hasher.hexdigest()

    def source(self, name: str) -> Source:
        for src in self.sources:
            if src.name == name:
                return src
        raise KeyError(name)


def available_recipes() -> list[str]:
    return sorted(p.stem for p in RECIPES_DIR.glob("*.toml"))


def load_recipe(name_or_path: str | Path) -> Recipe:
    """Load `recipes/NAME.toml`, or a recipe file given by path; validate it all."""
    text = str(name_or_path)
    candidate = Path(text).expanduser()
    looks_like_path = text.endswith(".toml") or "/" in text or candidate.is_file()
    path = candidate if looks_like_path else RECIPES_DIR / f"{text}.toml"
    if not path.is_file():
        if candidate.is_dir():
            raise RecipeError(
                f"{candidate} is a folder, not a recipe file; give the path of a "
                f"recipe .toml file or a name from {RECIPES_DIR}"
            )
        if looks_like_path:
            raise RecipeError(f"recipe file {path} does not exist")
        known = ", ".join(available_recipes()) or "none"
        raise RecipeError(
            f"no recipe named {text!r} (known: {known}); give a name from "
            f"{RECIPES_DIR} or the path of a .toml file"
        )
    try:
        raw = path.read_bytes()
        data = tomllib.loads(raw.decode("utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise RecipeError(f"cannot read recipe {path}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(f"recipe {path} is not valid TOML: {exc}") from exc
    return replace(_Validator(path, raw).recipe(data), given=text)


def check_glibc(recipe: Recipe, glibc: GlibcVersion | str | None) -> GlibcVersion:
    """The target glibc (default: the recipe's own); refuse a base newer than the target.

    A library linked against glibc 2.31 may need symbols a 2.17 system lacks, so a recipe
    can only serve targets at or above its base's glibc. Zig recipes (`toolchain.zig`) link
    against zig's stubs for the target instead of the base's glibc, so they serve any target.
    """
    if glibc is None:
        return recipe.glibc
    if isinstance(glibc, str):
        try:
            glibc = GlibcVersion.parse(glibc)
        except UsageError as exc:
            raise RecipeError(exc.message) from exc
    if recipe.glibc > glibc and "zig" not in recipe.toolchain:
        fitting = ", ".join(_recipes_serving(glibc)) or "none"
        raise RecipeError(
            f"recipe {recipe.name} builds on glibc {recipe.glibc}, newer than --glibc {glibc}: "
            f"its output could need symbols glibc {glibc} lacks; pick a recipe whose glibc is "
            f"at most {glibc} (shipped: {fitting}) or raise --glibc"
        )
    return glibc


def _recipes_serving(glibc: GlibcVersion) -> list[str]:
    """Shipped recipes that can serve `glibc`: suggestions for an error message."""
    fitting = []
    for name in available_recipes():
        try:
            if load_recipe(name).glibc <= glibc:
                fitting.append(name)
        except RecipeError:
            continue
    return fitting


class _Validator:
    """Turns parsed TOML into a Recipe, or a RecipeError naming the file and the key."""

    def __init__(self, path: Path, raw: bytes) -> None:
        self.path = path
        self.raw = raw

    def fail(self, message: str) -> RecipeError:
        return RecipeError(f"recipe {self.path}: {message}")

    def _unknown(self, table: dict[str, Any], allowed: set[str], where: str) -> None:
        extra = sorted(set(table) - allowed)
        if extra:
            hint = ""
            if where == "toolchain" or "packages" in extra:
                hint = " (`packages` goes at the top level, before the first [table])"
            raise self.fail(
                f"unknown key{'s' if len(extra) > 1 else ''} "
                f"{', '.join(extra)} in {where}; allowed: "
                f"{', '.join(sorted(allowed))}{hint}"
            )

    def _str(self, table: dict[str, Any], key: str, where: str) -> str:
        """A required one-line string."""
        value = self._optional_str(table, key, where)
        if value is None:
            raise self.fail(f"{where}{key} is missing")
        return value

    def _optional_str(self, table: dict[str, Any], key: str, where: str) -> str | None:
        value = table.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            raise self.fail(f"{where}{key} must be a non-empty string, not {value!r}")
        self._single_line(value, f"{where}{key}")
        return value

    def _single_line(self, value: str, where: str) -> None:
        if _CONTROL.search(value):
            raise self.fail(f"{where} must be one line without control characters: {value!r}")

    def _str_list(self, table: dict[str, Any], key: str, where: str) -> list[str]:
        value = table.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.fail(f"{where}{key} must be a list of non-empty strings")
        for item in value:
            self._single_line(item, f"{where}{key}")
        return list(value)

    def _table(self, data: dict[str, Any], key: str, *, required: bool = False) -> dict[str, Any]:
        value = data.get(key)
        if value is None:
            if required:
                raise self.fail(f"[{key}] is missing")
            return {}
        if not isinstance(value, dict):
            raise self.fail(f"{key} must be a table ([{key}])")
        return value

    def recipe(self, data: dict[str, Any]) -> Recipe:
        self._unknown(data, _TOP_KEYS, "the recipe")
        name = self._str(data, "name", "")
        if not _NAME.match(name):
            raise self.fail(
                f"name {name!r} must be lower-case letters, digits, '.', '_' or '-' "
                "(it becomes part of an image tag)"
            )
        description = self._str(data, "description", "")
        try:
            glibc = GlibcVersion.parse(str(self._str(data, "glibc", "")), what="glibc")
        except UsageError as exc:
            raise self.fail(exc.message) from exc
        template = self._str(data, "template", "")
        if "/" in template or template.startswith("."):
            raise self.fail(
                f"template {template!r} must be a file name (beside the recipe, or "
                f"in {TEMPLATES_DIR})"
            )
        # A recipe of the user's own may bring its template beside it; else dockerfiles/.
        template_path = self.path.resolve().parent / template
        if not template_path.is_file():
            template_path = TEMPLATES_DIR / template
        if not template_path.is_file():
            known = ", ".join(sorted(p.name for p in TEMPLATES_DIR.glob("*.j2"))) or "none"
            raise self.fail(
                f"template {template} is neither beside the recipe nor in "
                f"{TEMPLATES_DIR} (known: {known})"
            )

        base = self._table(data, "base", required=True)
        self._unknown(base, _BASE_KEYS, "[base]")
        base_image = self._str(base, "image", "base.")
        if not _IMAGE.match(base_image):
            raise self.fail(f"base.image {base_image!r} is not an image reference")
        debootstrap = self._debootstrap(base.get("debootstrap"))

        env = self._table(data, "env")
        for key, value in env.items():
            if not _ENV_KEY.match(key):
                raise self.fail(f"env key {key!r} is not a valid environment variable name")
            if not isinstance(value, str):
                raise self.fail(f"env.{key} must be a string, not {value!r}")
            self._single_line(value, f"env.{key}")
        toolchain = self._table(data, "toolchain")
        for key, value in toolchain.items():
            if not isinstance(value, str):
                hint = (
                    " (`packages` goes at the top level, before the first [table])"
                    if key == "packages"
                    else ""
                )
                raise self.fail(f"toolchain.{key} must be a version string, not {value!r}{hint}")
            self._single_line(value, f"toolchain.{key}")
        packages = self._str_list(data, "packages", "")
        for package in packages:
            if not _PACKAGE.match(package):
                raise self.fail(f"package {package!r} is not a package name")

        raw_sources = data.get("sources", [])
        if not isinstance(raw_sources, list) or not all(isinstance(s, dict) for s in raw_sources):
            raise self.fail("sources must be an array of tables ([[sources]])")
        sources = [self._source(i, s) for i, s in enumerate(raw_sources)]
        self._no_clashes(sources)
        try:
            template_text = template_path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise self.fail(
                f"template {template_path} is not UTF-8 text (byte {exc.start}); save it as UTF-8"
            ) from None
        except OSError as exc:
            raise self.fail(
                f"cannot read template {template_path} ({exc.strerror or exc})"
            ) from None
        return Recipe(
            name=name,
            description=description,
            path=self.path.resolve(),
            glibc=glibc,
            template=template,
            template_path=template_path,
            base_image=base_image,
            debootstrap=debootstrap,
            env=dict(env),
            toolchain=dict(toolchain),
            packages=packages,
            sources=sources,
            raw=self.raw,
            template_text=template_text,
        )

    def _debootstrap(self, value: Any) -> dict[str, Any] | None:
        if value is None:
            return None
        if not isinstance(value, dict):
            raise self.fail('base.debootstrap must be a table, e.g. { suite = "bullseye" }')
        self._unknown(value, _DEBOOTSTRAP_KEYS, "base.debootstrap")
        result: dict[str, Any] = {"suite": self._str(value, "suite", "base.debootstrap.")}
        for key in ("variant", "mirror", "arch"):
            if key in value:
                result[key] = self._str(value, key, "base.debootstrap.")
        for key in ("include", "components"):
            if key in value:
                result[key] = self._str_list(value, key, "base.debootstrap.")
        return result

    def _url(self, value: str, where: str) -> str:
        if not is_url(value) or not urlsplit(value).path.rsplit("/", 1)[-1]:
            raise self.fail(f"{where} {value!r} must be an http(s) URL ending in a file name")
        return value

    def _source(self, index: int, table: dict[str, Any]) -> Source:
        where = f"sources[{index}]."
        self._unknown(table, _SOURCE_KEYS, f"sources[{index}]")
        url = self._url(self._str(table, "url", where), f"{where}url")
        filename = self._optional_str(table, "filename", where) or url_filename(url)
        name = self._optional_str(table, "name", where) or filename
        where = f"source {name!r}: "
        if not _FILENAME.match(filename):
            raise self.fail(
                f"{where}file name {filename!r} is not a plain file name; set `filename`"
            )
        mirrors = tuple(
            self._url(m, f"{where}mirror") for m in self._str_list(table, "mirrors", where)
        )
        sha256 = self._optional_str(table, "sha256", where)
        if sha256 is not None:
            sha256 = sha256.lower()
            if not _SHA256.match(sha256):
                raise self.fail(f"{where}sha256 {table['sha256']!r} is not 64 hex digits")
        signature = self._optional_str(table, "signature", where)
        checksums = self._optional_str(table, "checksums", where)
        checksums_sig = self._optional_str(table, "checksums_signature", where)
        for value, key in (
            (signature, "signature"),
            (checksums, "checksums"),
            (checksums_sig, "checksums_signature"),
        ):
            if value is not None:
                self._url(value, f"{where}{key}")
        if bool(checksums) != bool(checksums_sig):
            raise self.fail(
                f"{where}`checksums` and `checksums_signature` go together: an "
                "unsigned list proves nothing"
            )
        if not (sha256 or signature or checksums):
            raise self.fail(
                f"{where}nothing would verify it; give sha256, signature, or "
                "checksums + checksums_signature"
            )
        keys = tuple(self._key(k, where) for k in self._str_list(table, "keys", where))
        fingerprints = []
        for text in self._str_list(table, "fingerprints", where):
            fpr = normalize_fingerprint(text)
            if fpr is None:
                raise self.fail(
                    f"{where}fingerprint {text!r} is not a full 40-hex-digit key "
                    "fingerprint (short key ids can be forged)"
                )
            fingerprints.append(fpr)
        if signature or checksums:
            if not keys or not fingerprints:
                raise self.fail(
                    f"{where}a signature needs both `keys` (key files or URLs) and "
                    "`fingerprints` (the primary keys allowed to sign)"
                )
        elif keys or fingerprints:
            raise self.fail(
                f"{where}`keys`/`fingerprints` given but nothing is signed; add "
                "`signature` or `checksums`"
            )
        return Source(
            name=name,
            url=url,
            filename=filename,
            mirrors=mirrors,
            sha256=sha256,
            signature=signature,
            checksums=checksums,
            checksums_signature=checksums_sig,
            keys=keys,
            fingerprints=tuple(fingerprints),
        )

    def _key(self, text: str, where: str) -> str:
        """A key URL stays a URL; a path is resolved against the recipe's folder, then rsrc/,
        then the pinned keys shipped with the tool (`keys/NAME` of an installed wheel)."""
        if is_url(text):
            return text
        path = Path(text).expanduser()
        if path.is_absolute():
            candidates = [path]
        else:
            candidates = [
                self.path.resolve().parent / path,
                DEFAULT_RSRC / path,
                KEYS_DIR.parent / path,
            ]
        for candidate in candidates:
            if candidate.is_file():
                return str(candidate.resolve())
        raise self.fail(
            f"{where}key file {text!r} not found (looked in "
            f"{', '.join(str(c.parent) for c in candidates)})"
        )

    def _no_clashes(self, sources: list[Source]) -> None:
        """Two sources may share a companion (one signed list), never a file name otherwise."""
        names: set[str] = set()
        owners: dict[str, tuple[str, str, bool]] = {}  # file name -> (source, url, is main)
        for src in sources:
            if src.name in names:
                raise self.fail(f"two sources are named {src.name!r}")
            names.add(src.name)
            entries = [(src.filename, src.url, True)] + [
                (url_filename(u), u, False)
                for u in (src.signature, src.checksums, src.checksums_signature)
                if u
            ]
            for filename, url, is_main in entries:
                previous = owners.get(filename)
                if previous and (is_main or previous[2] or previous[1] != url):
                    raise self.fail(
                        f"sources {previous[0]!r} and {src.name!r} would both "
                        f"write rsrc/{filename}; set `filename`"
                    )
                owners[filename] = (src.name, url, is_main)
