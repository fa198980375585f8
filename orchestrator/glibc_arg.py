"""What `--glibc` and `--target` say, the same for every command: a glibc version or a platform
preset (platforms.py), and cargo-zigbuild's `TRIPLE.X.Y` target form, whose suffix is the glibc
(https://github.com/rust-cross/cargo-zigbuild#specify-glibc-version)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import UsageError

if TYPE_CHECKING:
    from .platforms import Platform


def split_target(text: str) -> tuple[str, str | None]:
    """`x86_64-unknown-linux-gnu.2.17` -> the triple, and the glibc after it (or None)."""
    triple, dot, glibc = text.partition(".")
    return triple, (glibc if dot else None)


def target_and_glibc(
    target_text: str | None, glibc_text: str | None, glibc_source: str = "--glibc"
) -> tuple[str | None, str | None, str]:
    """(triple, glibc text, what said the glibc): --target's suffix counts as --glibc; both
    given must agree."""
    if target_text is None:
        return None, glibc_text, glibc_source
    triple, suffix = split_target(target_text)
    if suffix is None:
        return triple, glibc_text, glibc_source
    if glibc_text is not None and glibc_text != suffix:
        raise UsageError(
            f"--target {target_text} says glibc {suffix} but {glibc_source} says "
            f"{glibc_text}; give one of them"
        )
    return triple, suffix, f"--target {target_text}"


def platform_named(text: str, what: str = "--glibc") -> Platform:
    """The platform a --glibc value names; a bad value is one line naming the option."""
    from .platforms import resolve

    try:
        return resolve(text, what=what)
    except UsageError as exc:
        if exc.message.startswith(what):
            raise
        raise UsageError(f"{what} {text}: {exc.message}") from None
