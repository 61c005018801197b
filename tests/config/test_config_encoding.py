"""A configuration that is not UTF-8 text (saved as Latin-1, or not text at all) is a one-line
error naming the file and the first bad byte, through the real CLI: exit code 2, no traceback."""

from __future__ import annotations

import random
import re
import subprocess
import sys
from pathlib import Path

from bessai.config import load_config

VALID = "[gateway]\nhttp_port = 8001\n\n[[sites]]\nid = 'valdivia'\n"


def config_check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bessai.cli", "config", "check", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_latin1_config_names_file_byte_offset_and_line(tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    text = VALID.replace("id = 'valdivia'", "# Valdivia, región de Los Ríos\nid = 'valdivia'")
    raw = text.encode("latin-1")
    path.write_bytes(raw)
    offset = raw.index(b"\xf3")  # the "ó" of "región", one byte in Latin-1
    result = config_check(path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        f"error: configuration {path} is not UTF-8 text (byte 0xf3 at offset {offset}, "
        "line 5): save it as UTF-8"
    ]


def test_random_bytes_are_one_line_not_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "garbage.toml"
    raw = random.Random(13).randbytes(4096)
    path.write_bytes(raw)
    result = config_check(path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    found = re.search(
        r"byte 0x([0-9a-f]{2}) at offset (\d+), line (\d+)\): save it as UTF-8$", lines[0]
    )
    assert found, lines[0]
    offset = int(found.group(2))
    # The reported byte is the first one that cannot be UTF-8, on the line reported.
    assert raw[offset] == int(found.group(1), 16)
    raw[:offset].decode("utf-8")
    assert int(found.group(3)) == raw[:offset].count(b"\n") + 1
    assert str(path) in lines[0]


def test_utf8_control_bytes_are_a_toml_error_on_one_line(tmp_path: Path) -> None:
    path = tmp_path / "binary.toml"
    path.write_bytes(bytes(random.Random(4).randrange(0, 32) for _ in range(512)))
    result = config_check(path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: configuration {path} is not valid TOML: ")


def test_utf8_with_bom_is_accepted(tmp_path: Path) -> None:
    plain = tmp_path / "plain.toml"
    plain.write_text(VALID, encoding="utf-8")
    bom = tmp_path / "bom.toml"
    bom.write_text(VALID, encoding="utf-8-sig")
    assert bom.read_bytes().startswith(b"\xef\xbb\xbf")
    with_bom, _ = load_config(bom, environ={})
    without, _ = load_config(plain, environ={})
    assert with_bom.model_dump() == without.model_dump()
    assert with_bom.gateway.http_port == 8001
