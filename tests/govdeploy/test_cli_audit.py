"""``govdeploy audit show``: what the records hold is printed as data, never as console markup."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from govdeploy import cli
from govdeploy.config.settings import Settings, get_settings
from govdeploy.trust.audit import AuditLog
from govdeploy.trust.audit_trail import printable
from govdeploy.trust.encryption import seal
from govdeploy.trust.keys import init_keys, load_ed25519_private, master_key
from tests.conftest import CONFIG_DIR
from tests.govdeploy.trust.anchor_stores import MemoryAnchors


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    monkeypatch.setenv("GOVDEPLOY_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("GOVDEPLOY_CONFIG_DIR", str(CONFIG_DIR))
    get_settings.cache_clear()
    settings = get_settings()
    init_keys(settings.keys_dir, [])
    yield settings
    get_settings.cache_clear()


def trail(settings: Settings) -> AuditLog:
    master = master_key(settings.keys_dir)
    return AuditLog(
        settings.audit_log_path,
        load_ed25519_private(settings.keys_dir / "audit.key"),
        MemoryAnchors(),
        sealer=lambda data, record_id: seal(data, master, record_id).model_dump(),
    )


@pytest.fixture
def screen(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    """What ``audit show`` prints, on a wide colour terminal (markup would show as escape codes)."""
    captured = io.StringIO()
    console = Console(file=captured, width=500, force_terminal=True, color_system="standard")
    monkeypatch.setattr(cli, "console", console)
    return captured


def show(screen: io.StringIO, *args: str) -> str:
    screen.seek(0)
    screen.truncate()
    result = CliRunner().invoke(cli.app, ["audit", "show", *args])
    assert result.exit_code == 0, (result.output, result.exception)
    return screen.getvalue()


def test_markup_in_records_is_printed_literally(settings: Settings, screen: io.StringIO) -> None:
    trail(settings).append(
        "serving.killed",
        "[/x]",
        {"reason": "[red]x", "by": "[bold]mallory[/bold]"},
        model="[link=http://e]m",
        version="[/]",
    )
    output = show(screen)
    assert "│ [/x] " in output
    assert "reason=[red]x, by=[bold]mallory[/bold]" in output
    assert "[link=http://e]m v[/]" in output
    (row,) = [line for line in output.splitlines() if "serving.killed" in line]
    assert "\x1b" not in row  # no style, colour or link came out of the record


def test_revealed_personal_data_is_printed_literally(settings: Settings, screen: io.StringIO) -> None:
    trail(settings).append("approval.received", "ops", {"n": 1}, sensitive={"email": "[/x][red]e@x"})
    assert "n=1, personal data: (sealed)" in show(screen)
    assert "n=1, personal data: {'email': '[/x][red]e@x'}" in show(screen, "--reveal")


def test_control_characters_are_shown_as_escapes(settings: Settings, screen: io.StringIO) -> None:
    trail(settings).append("kill", "ops", {"reason": "\x1b[31mred\x1b]0;title\x07 \u202eevil"})
    output = show(screen)
    assert "\x1b[31m" not in output and "\x1b]0" not in output and "\u202e" not in output
    assert "reason=\\x1b[31mred\\x1b]0;title\\x07 \\u202eevil" in output


def test_printable_keeps_ordinary_text() -> None:
    assert printable("Zoë approved v3 [ok] 日本") == "Zoë approved v3 [ok] 日本"
    assert printable("a\nb\tc\u2028") == "a\\nb\\tc\\u2028"


def test_a_record_line_that_is_not_a_record_fails_show_with_its_offset(settings: Settings) -> None:
    trail(settings).append("first", "me")
    size = settings.audit_log_path.stat().st_size
    with settings.audit_log_path.open("a") as out:
        out.write("[red]not a record\n")
    result = CliRunner().invoke(cli.app, ["audit", "show"])
    assert result.exit_code != 0
    assert f"line 2 of {settings.audit_log_path} (byte offset {size}) is not an audit record" in str(
        result.exception
    )
