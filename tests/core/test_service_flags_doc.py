"""docs/service.md's flag table and `python -m core --help` agree: the same flags, the same
metavars, and every default the table names is the one --help shows (and ScoringConfig's)."""

import re
from pathlib import Path

from core.cli import score
from core.config import ScoringConfig

SERVICE_MD = Path(__file__).resolve().parents[2] / "docs" / "service.md"
# `--flag ARG` | meaning, in the table under "## Flags"
ROW = re.compile(r"^\| `(-{1,2}[\w-]+)(?: ([A-Z=]+))?` \| (.*) \|$")


def documented_flags() -> dict[str, tuple[str | None, str]]:
    """flag -> (metavar, meaning) from the table of the "## Flags" section."""
    section = SERVICE_MD.read_text(encoding="utf-8").split("\n## Flags\n", 1)[1].split("\n## ", 1)[0]
    return {m.group(1): (m.group(2), m.group(3)) for m in map(ROW.match, section.splitlines()) if m}


def help_records() -> dict[str, tuple[str, str]]:
    """flag -> (the option's column in --help, its help text with the shown default)."""
    # the command's own context settings (-h, show_default): click caches the help option the
    # first context makes, so a bare Context here would take `-h` from later --help output
    ctx = score.make_context("python -m core", [], resilient_parsing=True)
    records = {}
    for param in score.get_params(ctx):
        record = param.get_help_record(ctx)
        if record and "--help" not in param.opts:
            for flag in param.opts:
                records[flag] = record
    return records


def doc_default(meaning: str) -> str | None:
    """The default a table row names: "(default 8000)", "(default: one per ...)", "(default `X`)"."""
    match = re.search(r"\(default:? `?([^`;)]+)`?[;)]", meaning)
    return match.group(1).strip() if match else None


def test_the_table_lists_exactly_the_service_flags():
    assert sorted(documented_flags()) == sorted(help_records())


def test_the_table_names_the_same_metavars_as_help():
    records = help_records()
    for flag, (metavar, _) in documented_flags().items():
        column = records[flag][0]
        if metavar is None:
            assert column == flag, f"{flag}: --help shows an argument ({column}) the table does not"
        elif flag != "--log-level":   # click shows its choices instead
            assert column == f"{flag} {metavar}", f"{flag}: table {metavar}, --help {column}"


def test_every_default_in_the_table_is_the_one_help_shows():
    records = help_records()
    checked = 0
    for flag, (_, meaning) in documented_flags().items():
        default = doc_default(meaning)
        if default is None:
            continue
        shown = re.search(r"\[default: ([^\]]+)\]", " ".join(records[flag][1].split()))
        assert shown, f"{flag}: the table says default {default!r}, --help shows none"
        assert shown.group(1).split(";")[0].strip() == default, f"{flag}: table {default!r}, --help {shown.group(1)!r}"
        checked += 1
    assert checked >= 10   # bootstrap, workers, model, group, batch x2, metrics, stats, instance, slot, ...


def test_help_defaults_are_scoring_configs():
    """The flags default to None (a YAML value must win over a flag not given), so their shown
    defaults are text: it must be ScoringConfig's."""
    config, records = ScoringConfig(), help_records()
    expected = {"--bootstrap": config.bootstrap_servers, "--group": config.group_id,
                "--batch-max-records": config.batch_max_records, "--batch-max-wait-ms": config.batch_max_wait_ms,
                "--metrics-port": config.metrics_port, "--stats-interval": f"{config.stats_interval_s:g}",
                "--snapshot-interval": f"{config.state_snapshot_s:g}", "--offset-reset": config.offset_reset}
    for flag, value in expected.items():
        assert f"[default: {value}]" in " ".join(records[flag][1].split()), flag


def test_doc_default_reads_the_table_forms():
    assert doc_default("records (default 8000)") == "8000"
    assert doc_default("ids (default: one per input partition)") == "one per input partition"
    assert doc_default("id (default `fraudstream-scoring`)") == "fraudstream-scoring"
    assert doc_default("snapshots (default 5; 0: every transaction)") == "5"
    assert doc_default("no default here") is None
