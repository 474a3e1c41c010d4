"""The CLI's span flags: both forms parse, a bad one and a span of the other interval are usage errors
(exit 2) naming the fix, before any pipeline starts."""
from __future__ import annotations

from click.testing import CliRunner

from freshrank import cli
from tfx_pipeline.spans import SUCCESS_MARKER


def _land(folder) -> None:
    folder.mkdir(parents=True)
    (folder / "part-00000.csv").write_text("request_id\nr1\n")
    (folder / SUCCESS_MARKER).write_text("")


def test_run_takes_an_hourly_span_and_refuses_a_bad_one(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(cli, "_run", lambda config: seen.append(config) or 0)
    _land(tmp_path / "data" / "2026-11-01" / "13")
    base = ["run", "--data", str(tmp_path / "data"), "--home", str(tmp_path / "home")]
    assert CliRunner().invoke(cli.main, base).exit_code == 0
    assert str(seen[-1].span) == "2026-11-01T13" and seen[-1].interval == "hour"
    assert CliRunner().invoke(cli.main, [*base, "--span", "2026-11-01T13"]).exit_code == 0
    bad = CliRunner().invoke(cli.main, [*base, "--span", "2026-11-01T25"])
    assert bad.exit_code == 2 and "YYYY-MM-DDTHH" in bad.output
    daily = CliRunner().invoke(cli.main, [*base, "--span", "2026-11-01"])
    assert daily.exit_code == 2 and "holds hourly spans" in daily.output and "--interval" in daily.output


def test_a_daily_home_refuses_hourly_data(tmp_path, monkeypatch):
    monkeypatch.setattr(cli, "_run", lambda config: 0)
    _land(tmp_path / "data" / "2026-11-01" / "13")
    home = tmp_path / "home"
    home.mkdir()
    (home / "runs.jsonl").write_text('{"span": "2026-10-31", "status": "pushed"}\n')
    for command in (["run"], ["watch", "--once"]):
        result = CliRunner().invoke(cli.main, [*command, "--data", str(tmp_path / "data"), "--home", str(home)])
        assert result.exit_code == 2, result.output
        assert "holds daily spans but span" in result.output and "fresh --home" in result.output
