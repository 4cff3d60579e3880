"""Metadata values every asset attaches: code version and commit, images in markdown."""

import base64
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import dagster as dg

from retraining_assets.code_version import code_commit


def code_metadata(context: dg.AssetExecutionContext) -> dict[str, Any]:
    """``code/version`` (this asset's) and ``code/commit`` (the checkout's) of a run."""
    version = context.assets_def.code_versions_by_key.get(context.asset_key)
    return {"code/version": version or "none", "code/commit": code_commit()}


def md_png(png: bytes, alt: str) -> dg.MetadataValue:
    """PNG bytes as a markdown image embedded in metadata (the UI shows it; no file needed)."""
    encoded = base64.b64encode(png).decode("ascii")
    return dg.MetadataValue.md(f"![{alt}](data:image/png;base64,{encoded})")


def md_image(path: Path, alt: str) -> dg.MetadataValue:
    """A PNG file as a markdown image embedded in metadata."""
    return md_png(path.read_bytes(), alt)


def md_list(lines: Iterable[str]) -> dg.MetadataValue:
    """Lines as a markdown bullet list (the reasons of a verdict)."""
    return dg.MetadataValue.md("\n".join(f"- {line}" for line in lines))
