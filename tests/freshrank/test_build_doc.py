"""BUILD.md's and README.md's commands exist: every `freshrank` (and `kfp`) invocation names a real
command and real flags, and every full command line (and each row of README's command table) gives
the command's required options."""
from __future__ import annotations

import re
import shlex

import click
import pytest

from tests.helpers import REPO

BUILD_MD = (REPO / "BUILD.md").read_text()
README_MD = (REPO / "README.md").read_text()
SEPARATORS = {"|", "||", "&&", ";"}


def _readme_synopses() -> list[list[str]]:
    """README's command table: one synopsis per row, `[...]` optional, `(a \\| b)` alternatives."""
    rows = [span for line in README_MD.splitlines() if line.startswith("| `")
            for span in re.findall(r"`([^`]+)`", line.split(" | ")[0]) if re.match(r"^(\S*/)?freshrank ", span)]
    return [shlex.split(re.sub(r"[\[\]()]", " ", row.replace("\\|", " ").replace("...", ""))) for row in rows]


def _shell_commands(inline: bool = False) -> list[list[str]]:
    """Every command line of BUILD.md's sh blocks (or, inline=True, its inline code), as argv lists."""
    commands = []
    if inline:
        for span in re.findall(r"`([^`\n]+)`", BUILD_MD):
            if re.match(r"^(\S*/)?freshrank [a-z]", span):
                commands += _split(shlex.split(span.replace("...", "")))
        return [c for c in commands if c]
    for block in re.findall(r"```sh\n(.*?)```", BUILD_MD, flags=re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        joined = re.sub(r"\n\s*\|", " |", joined)  # a pipe continued on the next line
        for line in joined.splitlines():
            commands += _split(shlex.split(line, comments=True))
    return [c for c in commands if c]


def _split(tokens: list[str]) -> list[list[str]]:
    parts, current = [], []
    for token in tokens:
        if token in SEPARATORS:
            parts.append(current)
            current = []
        else:
            current.append(token)
    return parts + [current]


def _options(command: click.Command) -> set[str]:
    return {opt for param in command.params for opt in (*param.opts, *param.secondary_opts) if opt.startswith("-")}


def _check_flags(argv: list[str], command: click.Command, where: str) -> None:
    known = _options(command) | {"--help"}
    for token in argv:
        if token.startswith("--"):
            assert token.split("=", 1)[0] in known, f"{where}: {token} is not an option of the command"


def _is_freshrank(argv: list[str]) -> bool:
    return argv[0] == "freshrank" or argv[0].endswith("/freshrank")


FRESHRANK = [c for c in _shell_commands() if _is_freshrank(c)]
INLINE = [c for c in _shell_commands(inline=True) if _is_freshrank(c)]
README_ROWS = _readme_synopses()
README_INLINE = [c for span in re.findall(r"`([^`\n]+)`", README_MD) if re.match(r"^(\S*/)?freshrank [a-z]", span)
                 for c in _split(shlex.split(re.sub(r"[\[\]()]", " ", span.replace("\\|", " ").replace("...", ""))))
                 if c and _is_freshrank(c)]


def test_build_md_shows_each_production_command():
    used = {c[1] for c in FRESHRANK}
    assert {"compile", "submit", "export-serving-config", "tensorboard", "run"} <= used


ALL = FRESHRANK + INLINE + README_ROWS + README_INLINE


def test_readme_shows_every_command_in_its_table():
    from freshrank.cli import main

    assert {row[1] for row in README_ROWS} == set(main.commands)


@pytest.mark.parametrize("argv", ALL, ids=[" ".join(c[:2]) + f"#{i}" for i, c in enumerate(ALL)])
def test_freshrank_commands_exist(argv):
    from freshrank.cli import main

    name = argv[1]
    assert name in main.commands, f"`freshrank {name}` in the docs is not a command"
    command = main.commands[name]
    _check_flags(argv[2:], command, " ".join(argv))
    # A full command line (not a fragment quoted in the text) gives every required option.
    if argv not in FRESHRANK and argv not in README_ROWS:
        return
    for param in command.params:
        if param.required and isinstance(param, click.Option):
            assert any(t.split("=", 1)[0] in param.opts for t in argv), f"{' '.join(argv)}: missing {param.opts}"


def test_kfp_commands_use_real_kfp_flags():
    from kfp.cli.cli import cli

    kfp_commands = [c for c in _shell_commands() if c[0] == "kfp"]
    assert kfp_commands
    for argv in kfp_commands:
        ctx = click.Context(cli)
        group_args = []
        rest = argv[1:]
        while rest and rest[0].startswith("--"):
            group_args.append(rest.pop(0))
            if "=" not in group_args[-1]:
                group_args.append(rest.pop(0))
        _check_flags(group_args, cli, "kfp")
        group = cli.get_command(ctx, rest[0])
        command = group.get_command(ctx, rest[1])
        assert command is not None, argv
        _check_flags(rest[2:], command, " ".join(argv))


def test_files_build_md_points_to_exist():
    for path in ("Dockerfile", "deploy/kubernetes/tf-serving.yaml", "tfx_pipeline/evaluator_module.py"):
        assert path in BUILD_MD
        assert (REPO / path).exists(), path
