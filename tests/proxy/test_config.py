"""The [proxy] section: defaults that are safe (off, loopback, read-only), and a bad value is a
one-line error naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from bessai.config import load_config
from bessai.errors import ConfigError

SITE = """
[[sites]]
id = "{id}"
[[sites.devices]]
host = "192.168.1.50"
"""


def _write(tmp_path: Path, text: str, sites: tuple[str, ...] = ("home",)) -> Path:
    path = tmp_path / "site.toml"
    path.write_text(text + "".join(SITE.format(id=s) for s in sites), encoding="utf-8")
    return path


def test_the_defaults_are_off_loopback_and_read_only(tmp_path: Path) -> None:
    config, _ = load_config(_write(tmp_path, ""), environ={})
    proxy = config.proxy
    assert proxy.enabled is False
    assert proxy.host == "127.0.0.1"
    assert proxy.allowed_clients == ["127.0.0.0/8", "::1/128"]
    assert proxy.writers == []
    assert proxy.unit_ids == [0, 1]
    assert config.proxy_site == "home"


def test_a_lan_setup_with_one_writer_and_an_environment_override(tmp_path: Path) -> None:
    text = """
[proxy]
enabled = true
host = "0.0.0.0"
port = 502
allowed_clients = ["192.168.1.0/24"]

[[proxy.writers]]
client = "192.168.1.20"
limits = true
"""
    config, overridden = load_config(_write(tmp_path, text), environ={"BESSAI_PROXY__PORT": "1502"})
    assert config.proxy.port == 1502
    assert overridden == ["proxy.port"]
    (writer,) = config.proxy.writers
    assert (writer.client, writer.forcible, writer.limits, writer.registers) == (
        "192.168.1.20",
        True,
        True,
        [],
    )


@pytest.mark.parametrize(
    ("text", "sites", "message"),
    [
        ("[proxy]\nenabled = true\n", ("a", "b"), "proxy.site: name the site to serve (a, b)"),
        ('[proxy]\nsite = "x"\n', ("a",), "proxy.site 'x' is not a site (a)"),
        (
            '[proxy]\nallowed_clients = ["192.168.1.0/33"]\n',
            ("a",),
            "proxy.allowed_clients.0: '192.168.1.0/33' is not an IP address or network",
        ),
        (
            '[[proxy.writers]]\nclient = "evcc.local"\n',
            ("a",),
            "proxy.writers.0.client: 'evcc.local' is not an IP address or network",
        ),
        (
            "[proxy]\nunit_ids = [1, 300]\n",
            ("a",),
            "proxy.unit_ids.1: Input should be less than or equal to 255",
        ),
        ("[proxy]\nport = 70000\n", ("a",), "proxy.port: Input should be less than or equal"),
    ],
)
def test_a_bad_value_names_the_key(
    tmp_path: Path, text: str, sites: tuple[str, ...], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(_write(tmp_path, text, sites), environ={})
    assert message in str(caught.value)
