"""Recipe -> Dockerfile, through the recipe's jinja2 template in dockerfiles/.

StrictUndefined turns a template asking for something the recipe lacks into a clear error
instead of an empty string in a RUN line; every value spliced into a shell line goes through
the `shquote` filter. The same recipe and glibc always give the same bytes (no dates, no
paths of the machine), so the result can be hashed into an image tag.

The build context the Dockerfile expects: each of the recipe's sources (as fetched by
fetch.py) at `rsrc/<filename>`; nothing else.
"""

from __future__ import annotations

import functools
import shlex
import traceback
from typing import Any

import jinja2

from . import zigwrap
from .errors import RecipeError
from .glibc import GlibcVersion
from .paths import TEMPLATES_DIR
from .recipe import Recipe, check_glibc

CONTEXT_SOURCES_DIR = "rsrc"


def shquote(value: Any) -> str:
    """Quote one value for a POSIX shell (and Dockerfile ENV, which follows the same rules)."""
    return shlex.quote(str(value))


@functools.lru_cache(maxsize=8)
def environment(search_path: tuple[str, ...] = (str(TEMPLATES_DIR),)) -> jinja2.Environment:
    """The jinja2 environment; `{% include %}` looks in `search_path`, in order."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(list(search_path), encoding="utf-8"),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # a Dockerfile, not HTML
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["shquote"] = shquote
    env.filters["shjoin"] = lambda values: " ".join(shquote(v) for v in values)
    return env


def template_search_path(recipe: Recipe) -> tuple[str, ...]:
    """Where a template's includes are found: beside the recipe first, then dockerfiles/ (the
    order recipe.py finds the template itself in)."""
    folders = [str(recipe.path.parent), str(TEMPLATES_DIR)]
    return tuple(dict.fromkeys(folders))


def render_dockerfile(recipe: Recipe, glibc: GlibcVersion | str | None = None) -> str:
    """The Dockerfile text for `recipe`, targeting `glibc` (default: the recipe's own).

    Raises RecipeError when the recipe's base glibc is newer than `glibc`, or when the
    template needs something the recipe does not give, or fails in any other way (it is the
    user's code: its errors are bad input, named with the template and line).
    """
    target = check_glibc(recipe, glibc)
    context = {
        "recipe": recipe,
        "name": recipe.name,
        "description": recipe.description,
        "glibc": str(recipe.glibc),
        "target_glibc": str(target),
        "base_image": recipe.base_image,
        "debootstrap": recipe.debootstrap,
        "env": recipe.env,
        "toolchain": recipe.toolchain,
        "packages": recipe.packages,
        "sources": recipe.sources,
        "src": {source.name: source for source in recipe.sources},
        "context_dir": CONTEXT_SOURCES_DIR,
        # The in-image zig wrappers: zigwrap.py's own rules, written as sh.
        "zig_wrapper": zigwrap.sh_wrapper,
    }
    name = str(recipe.template_path)
    try:
        # Render the text read at load time: exactly the bytes Recipe.digest() covered.
        env = environment(template_search_path(recipe))
        template = env.template_class.from_code(
            env,
            env.compile(recipe.template_text, recipe.template, name),
            env.make_globals(None),
            None,
        )
        text = template.render(context)
    except jinja2.UndefinedError as exc:
        raise RecipeError(
            f"recipe {recipe.name}: template {name}{_line(exc, name)} needs "
            f"something the recipe does not give ({exc.message}); add it to "
            f"{recipe.path.name}"
        ) from None
    except jinja2.TemplateNotFound as exc:
        raise RecipeError(
            f"template {name}{_line(exc, name)} includes {exc.name}, which is "
            f"neither beside the recipe nor in {TEMPLATES_DIR}"
        ) from None
    except jinja2.TemplateSyntaxError as exc:
        where = exc.filename or name
        raise RecipeError(f"template {where} line {exc.lineno} is broken: {exc.message}") from None
    except UnicodeDecodeError as exc:  # an included file; the template itself is read earlier
        raise RecipeError(
            f"template {name}{_line(exc, name)} includes a file that is not UTF-8 "
            f"text ({_included_file(exc) or 'an included template'}); save it as "
            "UTF-8"
        ) from None
    except Exception as exc:  # noqa: BLE001 - the template is the user's code
        raise RecipeError(
            f"template {name}{_line(exc, name)} failed: {type(exc).__name__}: "
            f"{exc}; fix the expression there"
        ) from None
    return text.rstrip("\n").replace("\r\n", "\n") + "\n"


def _template_frames(exc: BaseException) -> list[traceback.FrameSummary]:
    """The frames of templates in `exc`'s traceback (jinja2 rewrites them to name the template
    file and its line), innermost last."""
    return [
        frame
        for frame in traceback.extract_tb(exc.__traceback__)
        if not frame.filename.endswith(".py") and not frame.filename.startswith("<")
    ]


def _line(exc: BaseException, name: str) -> str:
    """` line N` (in the template itself, else ` (in FILE line N)`), or "" when unknown."""
    frames = _template_frames(exc)
    if not frames:
        line = getattr(exc, "lineno", None)
        return f" line {line}" if line else ""
    inner = frames[-1]
    if inner.filename == name:
        return f" line {inner.lineno}"
    return f" (in {inner.filename} line {inner.lineno})"


def _included_file(exc: UnicodeDecodeError) -> str | None:
    """The file jinja2's loader was decoding when it failed (the loader's frame knows it)."""
    tb = exc.__traceback__
    found = None
    while tb is not None:
        filename = tb.tb_frame.f_locals.get("filename")
        if isinstance(filename, str) and tb.tb_frame.f_code.co_name == "get_source":
            found = filename
        tb = tb.tb_next
    return found
