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
from typing import Any

import jinja2

from .errors import RecipeError
from .glibc import GlibcVersion
from .recipe import TEMPLATES_DIR, Recipe, check_glibc

CONTEXT_SOURCES_DIR = "rsrc"


def shquote(value: Any) -> str:
    """Quote one value for a POSIX shell (and Dockerfile ENV, which follows the same rules)."""
    return shlex.quote(str(value))


@functools.lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # a Dockerfile, not HTML
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["shquote"] = shquote
    env.filters["shjoin"] = lambda values: " ".join(shquote(v) for v in values)
    return env


def render_dockerfile(recipe: Recipe, glibc: GlibcVersion | str | None = None) -> str:
    """The Dockerfile text for `recipe`, targeting `glibc` (default: the recipe's own).

    Raises RecipeError when the recipe's base glibc is newer than `glibc`, or when the
    template needs something the recipe does not give.
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
    }
    try:
        # Render the text read at load time: exactly the bytes Recipe.digest() covered.
        template = environment().from_string(recipe.template_text)
        text = template.render(context)
    except jinja2.UndefinedError as exc:
        raise RecipeError(f"recipe {recipe.name}: template {recipe.template} needs something "
                          f"the recipe does not give ({exc.message}); add it to "
                          f"{recipe.path.name}") from exc
    except jinja2.TemplateError as exc:
        line = getattr(exc, "lineno", None)
        where = f" line {line}" if line else ""
        raise RecipeError(f"template {recipe.template}{where} is broken: {exc}") from exc
    return text.rstrip("\n").replace("\r\n", "\n") + "\n"
