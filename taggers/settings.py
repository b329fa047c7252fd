"""The one settings object: every option comes from a ``TAGGER_*`` environment variable."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

BUNDLED_RULES = Path(__file__).resolve().parent.parent / "rules"


class Settings(BaseSettings):
    """Options with their defaults; see the README's configuration table."""

    model_config = SettingsConfigDict(env_prefix="TAGGER_", extra="ignore")

    rules_dir: Path | None = Field(
        default=None, description="Rule directory; default ./rules, else the bundled pack"
    )
    max_event_bytes: int = Field(
        default=64 * 1024, ge=256, description="Larger events go to the DLQ"
    )

    def resolved_rules_dir(self) -> Path:
        """The rule directory to load: the setting, else ./rules, else the bundled pack."""
        if self.rules_dir is not None:
            return self.rules_dir
        local = Path("rules")
        return local if local.is_dir() else BUNDLED_RULES
