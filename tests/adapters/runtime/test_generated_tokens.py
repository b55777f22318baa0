"""The tokens `frontdesk run` makes when none is set (adapters/runtime/serving.py): the admin token and the REST
channel's (`POST /chat`), each in a 0600 file under FRONTDESK_HOME, kept across runs; the terminal is told where
each is, never the token."""

from __future__ import annotations

import io
import stat

from rich.console import Console

from adapters.runtime.serving import ensure_admin_token, ensure_chat_token
from adapters.runtime.settings import Settings


def test_run_generates_each_token_into_a_private_file_and_prints_only_where(tmp_path):
    settings = Settings(FRONTDESK_HOME=tmp_path / "home")
    for ensure, file, variable in ((ensure_chat_token, "chat-token", "FRONTDESK_CHAT_TOKEN"),
                                   (ensure_admin_token, "admin-token", "FRONTDESK_ADMIN_TOKEN")):
        output = io.StringIO()
        token = ensure(settings, Console(file=output, width=400))
        path = tmp_path / "home" / file
        assert path.read_text().strip() == token
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert variable in output.getvalue() and str(path) in output.getvalue()
        assert token not in output.getvalue()
        # A token the settings accept (long enough, not a placeholder), the same on the next run.
        assert Settings(**{variable: token}).model_dump() is not None
        assert ensure(settings, Console(file=io.StringIO())) == token
    assert (tmp_path / "home" / "chat-token").read_text() != (tmp_path / "home" / "admin-token").read_text()


def test_a_token_from_the_environment_is_used_and_nothing_is_written(tmp_path):
    chosen = "operator-chosen-chat-token-0123456789abcdef"
    settings = Settings(FRONTDESK_HOME=tmp_path / "home", FRONTDESK_CHAT_TOKEN=chosen)
    assert ensure_chat_token(settings, Console(file=io.StringIO())) == chosen
    assert not (tmp_path / "home" / "chat-token").exists()
