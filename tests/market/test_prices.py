"""The price loader on every real price file, and on malformed ones."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from bessai.errors import DataError
from bessai.market.prices import PriceSeries, conversion_factor, detect_format, load_prices

CRUCERO = "cen_cmg_crucero220_2019-2023.csv"
VALDIVIA = "cen_cmg_valdivia220_2023.tsv"
SMARD = "smard_day_ahead_prices_2018.csv"


@pytest.fixture(scope="module")
def crucero(data_dir: Path) -> PriceSeries:
    return load_prices(data_dir / CRUCERO)


def test_formats_are_detected(data_dir: Path) -> None:
    assert detect_format(data_dir / CRUCERO) == "cen-csv"
    assert detect_format(data_dir / VALDIVIA) == "cen-tsv"
    assert detect_format(data_dir / SMARD) == "smard"


def test_crucero_rows_units_and_dst(crucero: PriceSeries) -> None:
    s = crucero
    assert s.report.rows == 43_824
    assert s.unit == "USD/MWh"
    assert s.node == "BA S/E CRUCERO 220KV BP1"
    assert s.step == timedelta(hours=1)
    # hora 1 of 2019-01-01 is 00:00-01:00 in Chilean summer time (UTC-3).
    assert s.start == datetime(2019, 1, 1, 3, tzinfo=UTC)
    assert s.end == datetime(2024, 1, 1, 3, tzinfo=UTC)
    assert len(s) == 43_824
    # Five 25-hour days (hora 25 kept), five spring-forward rows dropped, and the hora 1 that
    # the origin lost after each 25-hour day interpolated.
    assert len(s.report.of_kind("dst-repeated-hour")) == 5
    assert len(s.report.of_kind("dst-missing-hour")) == 5
    assert s.report.filled == tuple(
        datetime(y, 4, d, 4, tzinfo=UTC)
        for y, d in [(2019, 7), (2020, 5), (2021, 4), (2022, 3), (2023, 2)]
    )
    # 2023-04-01 hora 24 and hora 25 are the two 23:00 local hours: 02:00 and 03:00 UTC.
    assert s.prices[datetime(2023, 4, 2, 2, tzinfo=UTC)] == pytest.approx(151.87)
    assert s.prices[datetime(2023, 4, 2, 3, tzinfo=UTC)] == pytest.approx(142.49)
    # The filled hour lies between its neighbours (142.49 and 154.62).
    assert s.prices[datetime(2023, 4, 2, 4, tzinfo=UTC)] == pytest.approx((142.49 + 154.62) / 2)
    yearly = s.prices.groupby(s.index.tz_convert("America/Santiago").year).mean()
    assert yearly[2023] == pytest.approx(77.0, abs=0.1)
    assert s.prices.min() >= 0


def test_crucero_clp_column_converts_with_the_exchange_rate(data_dir: Path) -> None:
    clp = load_prices(data_dir / CRUCERO, column="costo_clp")
    assert clp.unit == "CLP/kWh"
    first = clp.prices.iloc[0]
    assert first == pytest.approx(38.62471)
    rate = 38.62471 * 1000 / 55.52  # CLP per USD on 2019-01-01
    usd = clp.to_unit("USD/MWh", clp_per_usd=rate)
    assert usd.prices.iloc[0] == pytest.approx(55.52)
    back = usd.to_unit("CLP/kWh", clp_per_usd=rate)
    assert back.prices.iloc[0] == pytest.approx(first)
    with pytest.raises(ValueError, match="clp_per_usd"):
        clp.to_unit("USD/MWh")
    assert conversion_factor("EUR/MWh", "EUR/kWh") == pytest.approx(1e-3)


def test_valdivia_tsv_decimal_comma_and_dst(data_dir: Path) -> None:
    s = load_prices(data_dir / VALDIVIA)
    assert s.report.rows == 8_761
    assert len(s) == 8_760
    assert s.unit == "USD/MWh"
    assert s.node == "BA S/E VALDIVIA 220KV BP1"
    assert s.prices.iloc[0] == pytest.approx(163.27)  # "163,27"
    assert s.prices.mean() == pytest.approx(100.0, abs=0.05)
    assert s.prices.max() == pytest.approx(348.16)
    repeated = s.report.of_kind("dst-repeated-hour")
    assert [i.line for i in repeated] == [2186]
    assert repeated[0].timestamp == datetime(2023, 4, 2, 3, tzinfo=UTC)
    assert s.report.filled == ()
    pesos = load_prices(data_dir / VALDIVIA, column="costo_en_pesos")
    assert pesos.unit == "CLP/kWh"
    assert pesos.prices.iloc[0] == pytest.approx(140.3322)


def test_smard_germany_stitched_with_negative_prices(data_dir: Path) -> None:
    s = load_prices(data_dir / SMARD)
    assert s.unit == "EUR/MWh"
    assert s.node == "Germany"
    assert s.timezone == "Europe/Berlin"
    assert len(s) == 8_760
    assert s.start == datetime(2017, 12, 31, 23, tzinfo=UTC)  # 00:00 CET
    assert int((s.prices < 0).sum()) == 134
    assert s.prices.mean() == pytest.approx(44.47, abs=0.01)
    assert [i.kind for i in s.report.issues] == ["zone-change"]
    # The repeated 02:00 of 2018-10-28 is two distinct UTC hours.
    assert s.prices[datetime(2018, 10, 28, 0, tzinfo=UTC)] == pytest.approx(41.62)
    assert s.prices[datetime(2018, 10, 28, 1, tzinfo=UTC)] == pytest.approx(41.59)


def test_smard_any_zone_by_name(data_dir: Path) -> None:
    fr = load_prices(data_dir / SMARD, column="France")
    assert fr.node == "France"
    assert fr.prices.iloc[0] == pytest.approx(6.74)
    at = load_prices(data_dir / SMARD, column="Austria[€/MWh]")
    # Austria only has prices from the zone split on: the series starts there.
    assert at.start == datetime(2018, 9, 30, 22, tzinfo=UTC)
    assert at.report.of_kind("missing-value")
    with pytest.raises(DataError, match="no zone 'Atlantis'"):
        load_prices(data_dir / SMARD, column="Atlantis")


def test_generic_csv_with_offsets_and_gap(tmp_path: Path) -> None:
    f = tmp_path / "p.csv"
    f.write_text(
        "timestamp,price\n"
        "2024-07-01T00:00:00-04:00,10\n"
        "2024-07-01T04:15:00Z,20\n"
        "2024-07-01T04:45:00Z,40\n"
    )
    s = load_prices(f)
    assert s.step == timedelta(minutes=15)
    assert s.unit == "USD/MWh"
    assert np.allclose(s.values, [10, 20, 30, 40])
    assert s.report.filled == (datetime(2024, 7, 1, 4, 30, tzinfo=UTC),)


def test_generic_unit_from_header(tmp_path: Path) -> None:
    f = tmp_path / "p.csv"
    f.write_text("timestamp,price_clp_kwh\n2024-01-01T00:00Z,1\n2024-01-01T01:00Z,2\n")
    assert load_prices(f).unit == "CLP/kWh"


def test_cen_15_minute_online(tmp_path: Path) -> None:
    f = tmp_path / "online.tsv"
    rows = ["barra_mnemotecnico\tfecha\thora\tminuto\tcosto_en_dolares\tcosto_en_pesos\tnombre"]
    for hora in (1, 2):
        for minuto in (0, 15, 30, 45):
            rows.append(f"BA01\t2024-07-10\t{hora}\t{minuto}\t{hora},{minuto}\t1,0\tBA S/E X")
    f.write_text("\n".join(rows) + "\n")
    s = load_prices(f)
    assert s.step == timedelta(minutes=15)
    assert len(s) == 8
    assert s.start == datetime(2024, 7, 10, 4, tzinfo=UTC)  # winter time UTC-4
    assert s.values[5] == pytest.approx(2.15)


@pytest.mark.parametrize(
    ("content", "where", "what"),
    [
        ("timestamp,price\n2024-01-01T00:00Z,1\n2024-01-01T01:00Z,abc\n", ":3:2:", "not a number"),
        ("timestamp,price\n2024-01-01T00:00,1\n", ":2:1:", "no UTC offset"),
        ("timestamp,price\n2024-01-01T00:00Z,1\n2024-13-01T00:00Z,1\n", ":3:1:", "ISO-8601"),
        ("timestamp,price\n2024-01-01T00:00Z,1\n2024-01-01T00:00Z,2\n", ":3:", "duplicate"),
        ("timestamp,price\n2024-01-01T00:00Z,1\n2024-01-01T01:00Z\n", ":3:", "expected 2 fields"),
    ],
)
def test_malformed_generic_names_line_and_column(
    tmp_path: Path, content: str, where: str, what: str
) -> None:
    f = tmp_path / "bad.csv"
    f.write_text(content)
    with pytest.raises(DataError, match=what) as err:
        load_prices(f)
    assert f"{f}{where}" in str(err.value)


def test_malformed_real_file_names_line_and_column(data_dir: Path, tmp_path: Path) -> None:
    lines = (data_dir / VALDIVIA).read_text(encoding="utf-8").splitlines()
    fields = lines[99].split("\t")
    fields[4] = "12;5"
    lines[99] = "\t".join(fields)
    bad = tmp_path / "valdivia_bad.tsv"
    bad.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DataError) as err:
        load_prices(bad)
    assert str(err.value).startswith(f"{bad}:100:5: '12;5' is not a number")
    assert "costo_en_dolares" in str(err.value)


def test_cen_hora_25_on_an_ordinary_day_is_rejected(tmp_path: Path) -> None:
    f = tmp_path / "h25.tsv"
    f.write_text(
        "barra_mnemotecnico\tfecha\thora\tcosto_en_dolares\tnombre\n"
        "B\t2023-06-01\t24\t1,0\tN\nB\t2023-06-01\t25\t1,0\tN\n"
    )
    with pytest.raises(DataError, match=r":3:3: hora 25 on 2023-06-01"):
        load_prices(f)


def test_unknown_format(tmp_path: Path) -> None:
    f = tmp_path / "x.csv"
    f.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(DataError, match=r"x.csv:1: unknown price file format"):
        load_prices(f)


def test_upsampling_repeats_each_price(crucero: PriceSeries) -> None:
    day = crucero.between(crucero.start, crucero.start + timedelta(days=1))
    q = day.resample(timedelta(minutes=15))
    assert len(q) == 96
    assert np.allclose(q.values[::4], day.values)
    assert np.allclose(q.values[3::4], day.values)


def test_cen_file_with_several_nodes(tmp_path: Path) -> None:
    f = tmp_path / "two.tsv"
    header = "barra_mnemotecnico\tfecha\thora\tcosto_en_dolares\tnombre\n"
    body = "".join(
        f"{code}\t2023-06-01\t{h}\t{h},5\t{name}\n"
        for code, name in [("BA01", "BA S/E A"), ("BA02", "BA S/E B")]
        for h in (1, 2)
    )
    f.write_text(header + body)
    with pytest.raises(DataError, match=r"two.tsv:4:5: a second node 'BA S/E B'"):
        load_prices(f)
    b = load_prices(f, node="BA02")
    assert b.node == "BA S/E B"
    assert b.values.tolist() == [1.5, 2.5]
    with pytest.raises(DataError, match="no rows for node 'C'; nodes in the file: BA S/E A"):
        load_prices(f, node="C")


def test_malformed_smard_names_line_and_column(data_dir: Path, tmp_path: Path) -> None:
    lines = (data_dir / SMARD).read_text(encoding="utf-8-sig").splitlines()[:6]
    fields = lines[4].split(";")
    fields[15] = "4,2"  # Germany/Austria/Luxembourg, column 16
    lines[4] = ";".join(fields)
    bad = tmp_path / "smard_bad.csv"
    bad.write_text("\ufeff" + "\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DataError) as err:
        load_prices(bad)
    assert str(err.value) == (
        f"{bad}:5:16: '4,2' is not a number (column 'Germany/Austria/Luxembourg[€/MWh]')"
    )
    lines[2] = lines[2].replace("1:00 AM", "25:00 AM")
    bad.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"smard_bad.csv:3:1: .* is not a date"):
        load_prices(bad)


def test_cen_csv_timestamp_must_agree_with_fecha_and_hora(tmp_path: Path) -> None:
    f = tmp_path / "c.csv"
    f.write_text(
        "timestamp,fecha,hora,costo_usd,costo_clp,barra\n"
        "2023-04-02 00:00:00,2023-04-01,24,1.0,1.0,B\n"
        "2023-04-02 02:00:00,2023-04-01,25,1.0,1.0,B\n"
    )
    with pytest.raises(DataError, match=r"c.csv:3:1: timestamp '2023-04-02 02:00:00' is not"):
        load_prices(f)
