"""Kept for importers of `orchestrator.cache`: the cache folder now lives in paths.py."""

from __future__ import annotations

from .paths import cache_dir

__all__ = ["cache_dir"]
