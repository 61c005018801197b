"""The CEN fetcher against a local HTTP server serving pages in the API's shapes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from bessai.cli import app
from bessai.config import load_config
from bessai.errors import ConfigError
from bessai.market.fetch import (
    CenClient,
    FetchError,
    FetchSettings,
    fetch,
    plan_fetch,
    settings_from,
)
from bessai.market.prices import load_prices
from tests.market.fixture_server import Reply, ScriptedFailures, fast_client, json_server

FIXTURES = Path(__file__).parent / "fixtures"
BUS = "BA S/E VALDIVIA 220KV BP1"
OTHER = "BA S/E CRUCERO 220KV BP1"


def v2_day(day: date) -> list[dict[str, Any]]:
    """Two buses, 24 hours (25 on the DST-end day), in the v2 costoMarBar record shape."""
    hours = 25 if day == date(2023, 4, 1) else 24
    rows = []
    for bus, base in ((BUS, 100.0), (OTHER, 40.0)):
        for h in range(1, hours + 1):
            rows.append(
                {
                    "barra_mnemotecnico": "BA01" if bus == BUS else "BA02",
                    "barra_referencia_mnemotecnico": "-",
                    "fecha": day.isoformat(),
                    "hora": h,
                    "costo_en_dolares": base + h + day.day / 100,
                    "costo_en_pesos": round((base + h) * 0.8, 3),
                    "nombre": bus,
                }
            )
    return rows


class FakeCen(ScriptedFailures):
    """Serves each day in pages of 10 records; scripted failures by (day, page)."""

    page_size = 10

    def __init__(self) -> None:
        super().__init__()
        self.log: list[tuple[str, int]] = []
        self.keys: list[str] = []

    def answer(self, path: str, query: dict[str, list[str]]) -> Reply:
        if path.endswith("/static"):
            return 200, {}, (FIXTURES / "cen_v4_page.json").read_bytes()
        day = query["startDate"][0]
        page = int(query.get("page", ["1"])[0])
        self.keys.append(query.get("user_key", [""])[0])
        self.log.append((day, page))
        if failure := self.scripted(day, page):
            return failure
        rows = v2_day(date.fromisoformat(day))
        chunk = rows[(page - 1) * self.page_size : page * self.page_size]
        more = page * self.page_size < len(rows)
        nxt = f"{path}?startDate={day}&endDate={day}&page={page + 1}" if more else None
        body = {"count": len(rows), "next": nxt, "previous": None, "results": chunk}
        return 200, {}, json.dumps(body).encode()


@pytest.fixture
def cen() -> Iterator[tuple[FakeCen, str]]:
    fake = FakeCen()
    with json_server(fake.answer) as base:
        yield fake, base


def client(base: str, sleeps: list[float] | None = None, retries: int = 3) -> CenClient:
    return fast_client(base, sleeps, api_key="k3y", retries=retries)


def test_pages_are_followed_filtered_and_written_as_a_cen_tsv(
    cen: tuple[FakeCen, str], tmp_path: Path
) -> None:
    fake, base = cen
    plan = plan_fetch(BUS, date(2023, 3, 31), date(2023, 4, 2), tmp_path)
    out = fetch(plan, client(base))
    # 48 records a day (49 + 1 on the DST day) in pages of 10.
    assert [p for d, p in fake.log if d == "2023-03-31"] == [1, 2, 3, 4, 5]
    assert set(fake.keys) == {"k3y"}
    series = load_prices(out)
    assert series.node == BUS
    # 24 + 25 + 24 local hours, the repeated hour of the DST end kept.
    assert len(series) == 73
    assert series.report.rows == 73
    first = series.prices.iloc[0]
    assert first == pytest.approx(101.31)


def test_429_and_500_are_retried_with_back_off(cen: tuple[FakeCen, str], tmp_path: Path) -> None:
    fake, base = cen
    fake.fail[("2023-05-02", 2)] = [429, 500, 503]
    sleeps: list[float] = []
    c = client(base, sleeps)
    out = fetch(plan_fetch(BUS, date(2023, 5, 2), date(2023, 5, 2), tmp_path), c)
    assert fake.log.count(("2023-05-02", 2)) == 4
    assert c.retried == 3
    # Retry-After: 0 on the 429; the back-off doubles with every attempt.
    assert sleeps == [0.0, 0.02, 0.04]
    assert len(load_prices(out)) == 24


def test_an_interrupted_download_resumes_from_the_cache(
    cen: tuple[FakeCen, str], tmp_path: Path
) -> None:
    fake, base = cen
    fake.fail[("2023-06-03", 1)] = [500, 500, 500, 500]
    plan = plan_fetch(BUS, date(2023, 6, 1), date(2023, 6, 4), tmp_path)
    with pytest.raises(FetchError, match=r"HTTP 500 after 4 attempts.*resume"):
        fetch(plan, client(base))
    resumed = plan_fetch(BUS, date(2023, 6, 1), date(2023, 6, 4), tmp_path)
    assert resumed.cached == [date(2023, 6, 1), date(2023, 6, 2)]
    fake.log.clear()
    out = fetch(resumed, client(base))
    assert sorted({d for d, _ in fake.log}) == ["2023-06-03", "2023-06-04"]
    values = load_prices(out).values
    assert len(values) == 96
    assert not np.isnan(values).any()


def test_unknown_bus_and_refused_key(cen: tuple[FakeCen, str], tmp_path: Path) -> None:
    _, base = cen
    with pytest.raises(FetchError, match="no record for bus 'NOWHERE'"):
        fetch(plan_fetch("NOWHERE", date(2023, 1, 5), date(2023, 1, 5), tmp_path), client(base))
    with pytest.raises(ConfigError, match="BESSAI_CEN_API_KEY"):
        CenClient(FetchSettings(api_key=None, base_url=base))


def test_v4_page_shape_with_decimal_commas(cen: tuple[FakeCen, str]) -> None:
    _, base = cen
    c = client(base)
    c.settings = FetchSettings(api_key="k", base_url=base, path="/v4/static", min_interval_s=0)
    rows = list(c.day(date(2025, 6, 1)))
    assert rows[0]["hora"] == 1
    assert rows[0]["costo_en_dolares"] == pytest.approx(57.79415)
    assert rows[1]["costo_en_pesos"] == pytest.approx(1234.56)
    assert rows[1]["barra_mnemotecnico"] == "S.GREGORIO____013"


def test_rate_limit_spaces_requests(cen: tuple[FakeCen, str], tmp_path: Path) -> None:
    _, base = cen
    now = [0.0]
    sleeps: list[float] = []

    def sleep(s: float) -> None:
        sleeps.append(s)
        now[0] += s

    settings = FetchSettings(api_key="k", base_url=base, min_interval_s=2.0)
    c = CenClient(settings, sleep=sleep, clock=lambda: now[0])
    fetch(plan_fetch(BUS, date(2023, 7, 1), date(2023, 7, 1), tmp_path), c)
    assert c.requests == 5
    assert sleeps == [2.0] * 4


def test_settings_from_file_and_environment(tmp_path: Path) -> None:
    cfg = tmp_path / "site.toml"
    cfg.write_text('[market]\ncen_api_key = "from-file"\ncen_base_url = "http://x"\n')
    assert settings_from(cfg, {}).api_key == "from-file"
    env = settings_from(cfg, {"BESSAI_CEN_API_KEY": "from-env"})
    assert env.api_key == "from-env"
    assert env.base_url == "http://x"
    # The same file is a valid deployment configuration: [market] belongs to this package.
    cfg.write_text('[[sites]]\nid = "a"\n[market]\ncen_api_key = "k"\n')
    assert load_config(cfg, {})[0].market == {"cen_api_key": "k"}
    cfg.write_text("[market]\ncen_api_key = 5\n")
    with pytest.raises(ConfigError, match=r"market\.cen_api_key must be a string"):
        settings_from(cfg, {})


def test_cli_dry_run_and_fetch(
    cen: tuple[FakeCen, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, base = cen
    monkeypatch.setenv("BESSAI_CEN_API_KEY", "envkey")
    args = ["market", "fetch", "--node", BUS, "--from", "2023-08-01", "--to", "2023-08-02"]
    args += ["--out", str(tmp_path), "--base-url", base, "--min-interval-s", "0"]
    dry = CliRunner().invoke(app, [*args, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    plan = json.loads(dry.stdout)
    assert plan["days_to_fetch"] == 2
    assert plan["api_key"] == "set"
    assert fake.log == []
    run = CliRunner().invoke(app, args)
    assert run.exit_code == 0, run.output
    assert Path(run.stdout.strip()).is_file()
    assert set(fake.keys) == {"envkey"}
