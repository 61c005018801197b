"""Every CEN dataset beyond the CMg, against a local server serving the assumed response shapes
(bessai.market.datasets): paging, filtering, combining, 429 with back-off, and resume."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from bessai.cli import app
from bessai.errors import ConfigError, DataError
from bessai.market.datasets import (
    DATASETS,
    Dataset,
    exog_frame,
    fetch_dataset,
    load_dataset_csv,
    plan_dataset,
)
from bessai.market.fetch import FetchError
from tests.market.fixture_server import Reply, ScriptedFailures, fast_client, json_server

KEYS = ("alpha", "beta")


def records(ds: Dataset, day: date, v2: bool) -> list[dict[str, Any]]:
    """Two keys (two records each per hour, so they combine), 24 hours, in the v4 shape
    (``fecha_hora``) or the v2 one (``fecha`` and ``hora``, the hour ending)."""
    out = []
    for key in KEYS if ds.key_fields else (None,):
        for h in range(24):
            for part in (1.0, 3.0):
                rec: dict[str, Any] = {ds.value_fields[0]: part * (h + 1)}
                if key is not None:
                    rec[ds.key_fields[0]] = key
                if v2:
                    rec.update(fecha=day.isoformat(), hora=h + 1)
                else:
                    rec["fecha_hora"] = f"{day.isoformat()} {h:02d}:00:00"
                out.append(rec)
    return out


class FakeSip(ScriptedFailures):
    """Pages of 20 records; v4 paging by page/totalPages, or v2 by ``next`` links."""

    page_size = 20

    def __init__(self) -> None:
        super().__init__()
        self.v2 = False
        self.log: list[tuple[str, str, int]] = []
        self.dataset: Dataset | None = None  # the one asked for (two share a path)

    def answer(self, path: str, query: dict[str, list[str]]) -> Reply:
        ds = self.dataset or next(d for d in DATASETS.values() if d.path == path)
        day = query["startDate"][0]
        page = int(query.get("page", ["1"])[0])
        self.log.append((path, day, page))
        if failure := self.scripted(day, page):
            return failure
        rows = records(ds, date.fromisoformat(day), self.v2)
        chunk = rows[(page - 1) * self.page_size : page * self.page_size]
        pages = -(-len(rows) // self.page_size)
        if self.v2:
            nxt = f"{path}?startDate={day}&endDate={day}&page={page + 1}" if page < pages else None
            body: dict[str, Any] = {"count": len(rows), "next": nxt, "previous": None,
                                    "results": chunk}  # fmt: skip
        else:
            body = {"data": chunk, "page": page, "limit": self.page_size, "totalPages": pages}
        return 200, {}, json.dumps(body).encode()


@pytest.fixture
def sip() -> Iterator[tuple[FakeSip, str]]:
    fake = FakeSip()
    with json_server(fake.answer) as base:
        yield fake, base


@pytest.mark.parametrize("name", list(DATASETS))
def test_dataset_pages_429_and_resume(sip: tuple[FakeSip, str], tmp_path: Path, name: str) -> None:
    fake, base = sip
    ds = DATASETS[name]
    fake.dataset = ds
    # Day 2: a 429 then a 503 on page 2 (retried); day 3: down for good (the fetch stops).
    fake.fail[("2023-03-02", 2)] = [429, 503]
    fake.fail[("2023-03-03", 1)] = [500] * 4
    sleeps: list[float] = []
    plan = plan_dataset(ds, None, date(2023, 3, 1), date(2023, 3, 4), tmp_path)
    with pytest.raises(FetchError, match=r"after 4 attempts.*resume"):
        fetch_dataset(plan, fast_client(base, sleeps))
    assert sleeps[:2] == [0.0, 0.02]  # Retry-After: 0 on the 429, then the doubled back-off
    resumed = plan_dataset(ds, None, date(2023, 3, 1), date(2023, 3, 4), tmp_path)
    assert resumed.cached == [date(2023, 3, 1), date(2023, 3, 2)]
    fake.log.clear()
    out = fetch_dataset(resumed, fast_client(base))
    assert sorted({d for _, d, _ in fake.log}) == ["2023-03-03", "2023-03-04"]
    wide = load_dataset_csv(out)
    keys = list(KEYS) if ds.key_fields else ["system"]
    assert list(wide.columns) == keys
    assert len(wide) == 96
    # Local 2023-03-01 00:00 (UTC-3, summer time) is 03:00 UTC; hour 1's records are 1 and 3.
    first = wide.iloc[0]
    assert wide.index[0] == pd.Timestamp("2023-03-01 03:00", tz="UTC")
    assert first[keys[0]] == pytest.approx(4.0 if ds.combine == "sum" else 2.0)


def test_v2_pages_and_a_key_filter(sip: tuple[FakeSip, str], tmp_path: Path) -> None:
    fake, base = sip
    fake.v2 = True
    ds = DATASETS["cmg-programmed"]
    plan = plan_dataset(ds, "BETA", date(2023, 7, 1), date(2023, 7, 1), tmp_path)
    wide = load_dataset_csv(fetch_dataset(plan, fast_client(base)))
    assert list(wide.columns) == ["beta"]
    # Winter: local midnight is 04:00 UTC; hora 1 is the hour from midnight.
    assert wide.index[0] == pd.Timestamp("2023-07-01 04:00", tz="UTC")
    assert "cmg_programmed_beta" in plan.output.name


def test_a_missing_field_names_the_record(sip: tuple[FakeSip, str], tmp_path: Path) -> None:
    _, base = sip
    odd = Dataset("odd", DATASETS["demand"].path, ("nope",), (), "MWh", "sum", "")
    plan = plan_dataset(odd, None, date(2023, 3, 1), date(2023, 3, 1), tmp_path)
    with pytest.raises(FetchError, match=r"record 0: no value field \(nope\).*demanda_mwh"):
        fetch_dataset(plan, fast_client(base))


def test_exogenous_inputs_from_a_dataset(sip: tuple[FakeSip, str], tmp_path: Path) -> None:
    _, base = sip
    plan = plan_dataset(DATASETS["cmg-programmed"], None, date(2023, 3, 1), date(2023, 3, 1),
                        tmp_path)  # fmt: skip
    wide = load_dataset_csv(fetch_dataset(plan, fast_client(base)))
    index = pd.date_range("2023-03-01 02:00", periods=4, freq="h", tz="UTC")
    ex = exog_frame(wide, index, {"cmg_prog": "alpha"})
    assert ex["cmg_prog"].isna().iloc[0]  # before the first value
    assert list(ex["cmg_prog"].iloc[1:]) == pytest.approx([2.0, 4.0, 6.0])
    with pytest.raises(DataError, match="no key 'gamma'"):
        exog_frame(wide, index, {"x": "gamma"})


def test_cli_dry_run_and_unknown_dataset(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(
        app,
        ["market", "fetch", "--dataset", "generation", "--from", "2023-01-01", "--to",
         "2023-01-10", "--out", str(tmp_path), "--dry-run"],
        env={"BESSAI_CEN_API_KEY": "x"},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["days_to_fetch"] == 10
    assert doc["url"].endswith("/generacion-real/v3/findByDate")
    bad = runner.invoke(app, ["market", "fetch", "--dataset", "weather", "--from",
                              "2023-01-01", "--to", "2023-01-02"])  # fmt: skip
    assert isinstance(bad.exception, ConfigError)
    assert "generation" in str(bad.exception)
    no_node = runner.invoke(app, ["market", "fetch", "--from", "2023-01-01", "--to",
                                  "2023-01-02"])  # fmt: skip
    assert isinstance(no_node.exception, ConfigError)
