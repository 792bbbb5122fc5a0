"""Every `bench` command and subcommand teaches by example: its --help shows one, and every
`--flag` its examples use is an option of the command they call (an example that drifted
from the options would fail as a newcomer types it)."""

import re

import click
import pytest
from click.testing import CliRunner

from bench.cli import cli


def commands(group: click.Group = cli, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    ctx = click.Context(group)
    found = []
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        found.append(path + (name,))
        if isinstance(command, click.Group):
            found += commands(command, path + (name,))
    return found


def command_at(path: tuple[str, ...]) -> click.Command:
    command = cli
    for name in path:
        command = command.get_command(click.Context(command), name)
    return command


def options_of(command: click.Command) -> set[str]:
    return {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)} | {"--help", "-h"}


def example_calls(help_text: str) -> list[list[str]]:
    """The `bench ...` command lines of the help's examples, as tokens, comments dropped."""
    calls = []
    for line in help_text.splitlines():
        line = line.split("#")[0].strip()
        for part in line.split("&&"):
            tokens = part.split()
            if tokens[:1] == ["bench"]:
                calls.append(tokens[1:])
    return calls


def resolve(tokens: list[str]) -> tuple[click.Command, list[str]]:
    """The command an example calls, and the rest of its tokens."""
    command, rest = cli, list(tokens)
    while isinstance(command, click.Group) and rest and not rest[0].startswith("-"):
        sub = command.get_command(click.Context(command), rest[0])
        assert sub is not None, f"bench {' '.join(tokens)}: no command {rest[0]!r}"
        command, rest = sub, rest[1:]
    return command, rest


ALL = commands()


def test_every_command_is_walked():
    assert ("run",) in ALL and ("broker", "up") in ALL and ("model", "speed") in ALL and len(ALL) >= 19


@pytest.mark.parametrize("path", ALL, ids=" ".join)
def test_help_shows_an_example_that_parses(path):
    result = CliRunner().invoke(cli, [*path, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "Example" in result.output, f"bench {' '.join(path)} --help has no example"
    calls = example_calls(result.output)
    assert calls, f"bench {' '.join(path)} --help shows no `bench ...` command line"
    for tokens in calls:
        command, rest = resolve(tokens)
        unknown = [t.split("=")[0] for t in rest if re.match(r"--?[A-Za-z]", t)
                   and t.split("=")[0] not in options_of(command)]
        assert not unknown, f"example `bench {' '.join(tokens)}` uses {unknown}, not options of it"


def test_an_example_with_an_unknown_flag_fails_the_check():
    command, rest = resolve(["broker", "up", "--nodez", "3"])
    assert command is command_at(("broker", "up")) and "--nodez" not in options_of(command)
