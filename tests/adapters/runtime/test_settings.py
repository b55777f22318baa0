"""Settings come only from the documented variable names."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from adapters.runtime.settings import Settings, load_settings


def test_only_documented_names_are_read(monkeypatch):
    # $HOME, $DEVICE and friends exist on many machines; they must not leak into Frontdesk's settings.
    monkeypatch.delenv("FRONTDESK_HOME", raising=False)
    monkeypatch.setenv("HOME", "/somewhere/else")
    monkeypatch.setenv("DEVICE", "cuda")
    monkeypatch.setenv("KB", "/not/the/kb")
    settings = load_settings()
    assert settings.home == Path(".frontdesk") and settings.device == "auto" and settings.kb is None
    monkeypatch.setenv("FRONTDESK_HOME", "/srv/frontdesk")
    monkeypatch.setenv("FRONTDESK_RATE_LIMIT", "5/10")
    settings = load_settings()
    assert settings.home == Path("/srv/frontdesk") and settings.rate_limit_pair == (5, 10.0)


def test_secrets_stay_out_of_repr_and_bad_values_are_named(monkeypatch):
    settings = Settings(FRONTDESK_ADMIN_TOKEN="s3cret-admin-0123456789abcdef0123456789",
                        SLACK_SIGNING_SECRET="s3cret-slack")
    assert "s3cret" not in repr(settings) and "s3cret" not in str(settings.model_dump())
    with pytest.raises(ValidationError, match="FRONTDESK_RATE_LIMIT"):
        Settings(FRONTDESK_RATE_LIMIT="lots")


def test_log_settings_are_settings_too_and_refused_by_name(monkeypatch):
    """FRONTDESK_LOG_* are read by their own class (logging starts before everything else) but checked with
    the rest at start-up, so a typo is named instead of silently logging another way."""
    from adapters.runtime.logs import logging_config

    monkeypatch.setenv("FRONTDESK_LOG_FORMAT", "text")
    monkeypatch.setenv("FRONTDESK_LOG_LEVEL", "debug")
    config = logging_config()
    assert config["root"]["level"] == "DEBUG" and "format" in config["formatters"]["default"]
    monkeypatch.setenv("FRONTDESK_LOG_LEVEL", "loud")
    with pytest.raises(ValidationError, match="FRONTDESK_LOG_LEVEL"):
        load_settings()
