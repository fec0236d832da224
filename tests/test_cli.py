"""The command line words the library's errors for its users: flags, not argument names."""

from __future__ import annotations

from typer.testing import CliRunner

from gisgrid import InputError
from gisgrid.cli import app
from gisgrid.delineate.edits import move


def test_library_errors_name_arguments_and_the_cli_names_flags(small_copy):
    try:
        move(small_copy, to="430204001002001")
    except InputError as exc:
        assert str(exc) == "give exactly one of building or compound"
    else:
        raise AssertionError("a move of nothing was accepted")
    result = CliRunner().invoke(app, ["move", small_copy.location, "--to", "430204001002001"])
    assert result.exit_code == 2
    assert "give exactly one of --building or --compound" in result.output
    assert "<<" not in result.output and "Traceback" not in result.output


def test_error_text_in_brackets_is_printed_as_it_is(tmp_path, small_copy):
    policy = tmp_path / "policy.toml"
    policy.write_text('[roster]\n[roles.x]\nscope="grid"\nkind="cadre"\nrule="nearest"\n', "utf-8")
    result = CliRunner().invoke(app, ["assign", small_copy.location, "--policy", str(policy)])
    assert result.exit_code == 2
    # rich would take "[roster]" and "[roles.NAME]" for markup and drop them
    assert "unknown section [roster]" in result.output
    assert "[network], [coverage] and [roles.NAME]" in result.output


def test_a_bug_is_one_line_not_a_traceback(monkeypatch, tmp_path):
    """No traceback reaches a user, even for a bug: one line, exit 1, and the traceback
    with GISGRID_DEBUG=1."""
    from gisgrid.io import workspace as module

    def broken(self):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(module.Workspace, "describe", broken)
    (tmp_path / "ws.gpkg").write_bytes(b"")
    result = CliRunner().invoke(app, ["info", str(tmp_path / "ws.gpkg")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "internal error in gisgrid" in result.output and "ZeroDivisionError" in result.output
    monkeypatch.setenv("GISGRID_DEBUG", "1")
    debug = CliRunner().invoke(app, ["info", str(tmp_path / "ws.gpkg")])
    assert isinstance(debug.exception, ZeroDivisionError)


def test_help_paragraphs_reflow_to_the_terminal():
    """rich kept each docstring's source line breaks, so every line of a long paragraph
    came out cut in two ("…one piece each, / when the / target is …")."""
    result = CliRunner().invoke(app, ["move", "--help"])
    assert result.exit_code == 0
    text = result.output.split("╭")[0]  # the description, before the option boxes
    lines = [line.strip() for line in text.splitlines()]
    paragraphs = "\n".join(lines).split("\n\n")  # blank lines part them
    for paragraph in paragraphs:
        rows = [row for row in paragraph.splitlines() if row]
        assert all(len(row) > 60 for row in rows[:-1]), rows  # filled, not cut
