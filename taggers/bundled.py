"""The default rule pack: the repository's top-level ``rules/`` folder, shipped in the
package as ``taggers.rules_pack`` and found through ``importlib.resources``, so a wheel
installed anywhere and an editable checkout both find it from any working directory."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Final

__all__ = ["BUNDLED_RULES", "bundled_rules"]

PACKAGE: Final = "taggers.rules_pack"


def bundled_rules() -> Path:
    """The directory of the bundled rule pack."""
    location = files(PACKAGE)
    if not isinstance(location, Path):  # a zip import: the rule loader reads real files
        raise RuntimeError(f"the bundled rules ({PACKAGE}) are not a directory: {location}")
    return location


BUNDLED_RULES: Final = bundled_rules()
