"""API keys: the store (hashes only, constant-time match, reload on change) and `bessai keys`."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from bessai.api.keys import KeyStore, Principal, Role
from bessai.errors import ConfigError


def test_store_keeps_only_salted_hashes(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys.json")
    a = store.add("ops", Role.CONTROL)
    b = store.add("grafana", Role.READ)
    assert a.startswith("bess_")
    assert len(a) > 40
    assert a != b
    text = (tmp_path / "keys.json").read_text()
    assert a not in text
    assert b not in text
    records = json.loads(text)["keys"]
    assert records[0]["salt"] != records[1]["salt"]
    assert stat.S_IMODE((tmp_path / "keys.json").stat().st_mode) == 0o600
    assert store.authenticate(a) == Principal("ops", Role.CONTROL)
    assert store.authenticate(b) == Principal("grafana", Role.READ)
    assert store.authenticate(a[:-1]) is None
    assert store.authenticate("") is None
    assert store.authenticate("bess_ñ-not-ascii") is None


def test_roles_are_ordered() -> None:
    assert Role.ADMIN.allows(Role.CONTROL)
    assert Role.CONTROL.allows(Role.READ)
    assert not Role.READ.allows(Role.CONTROL)
    assert not Role.CONTROL.allows(Role.ADMIN)


def test_store_errors_name_what_and_where(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    store = KeyStore(path)
    store.add("ops", Role.READ)
    with pytest.raises(ConfigError, match="a key named 'ops' already exists"):
        store.add("ops", Role.ADMIN)
    with pytest.raises(ConfigError, match="key name 'bad name'"):
        store.add("bad name", Role.READ)
    with pytest.raises(ConfigError, match=r"no key named 'nobody' .* \(keys: ops\)"):
        store.revoke("nobody")
    path.write_text("{not json")
    with pytest.raises(ConfigError, match=f"API keys file {path} is damaged: not valid JSON"):
        KeyStore(path).authenticate("bess_x")


def test_a_second_store_sees_changes_to_the_file(tmp_path: Path) -> None:
    gateway_view = KeyStore(tmp_path / "keys.json")
    cli_view = KeyStore(tmp_path / "keys.json")
    token = cli_view.add("late", Role.READ)
    assert gateway_view.authenticate(token) == Principal("late", Role.READ)
    cli_view.revoke("late")
    assert gateway_view.authenticate(token) is None


def _bessai(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bessai.cli", *args], capture_output=True, text=True, check=False
    )


def test_keys_cli_add_list_revoke(tmp_path: Path) -> None:
    config = tmp_path / "site.toml"
    config.write_text('[gateway]\ndata_dir = "data"\n\n[[sites]]\nid = "home"\n')
    added = _bessai("keys", "add", "ops", "--role", "control", "--config", str(config))
    assert added.returncode == 0, added.stderr
    token = added.stdout.strip()
    assert token.startswith("bess_")
    assert "shown only now" in added.stderr
    keys_file = tmp_path / "data" / "api_keys.json"
    assert KeyStore(keys_file).authenticate(token) == Principal("ops", Role.CONTROL)
    listed = _bessai("keys", "list", "--config", str(config))
    assert "ops" in listed.stdout
    assert "control" in listed.stdout
    assert token not in listed.stdout
    bad_role = _bessai("keys", "add", "x", "--role", "root", "--keys-file", str(keys_file))
    assert bad_role.returncode == 2
    assert "root" in bad_role.stderr
    duplicate = _bessai("keys", "add", "ops", "--keys-file", str(keys_file))
    assert duplicate.returncode == 2
    assert "a key named 'ops' already exists" in duplicate.stderr
    revoked = _bessai("keys", "revoke", "ops", "--keys-file", str(keys_file))
    assert revoked.returncode == 0
    assert KeyStore(keys_file).authenticate(token) is None
    assert "no keys in" in _bessai("keys", "list", "--keys-file", str(keys_file)).stdout
