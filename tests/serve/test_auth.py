"""API keys are stored hashed and checked in constant time; session cookies are signed, expire, and end
with their key; the `keys` and `serve` commands refuse what they cannot use."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ehrpredict.cli import main
from ehrpredict.errors import ConfigError
from ehrpredict.serve.auth import KeyStore, Principal, SessionSigner, new_key


def test_a_key_file_holds_salted_hashes_never_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "keys.json"
    assert main(["keys", "add", str(path), "--name", "ehr", "--scopes", "predict,read"]) == 0
    key = capsys.readouterr().out.strip()
    text = path.read_text()
    assert key.startswith("ehp_") and key not in text and key.split("_", 2)[2] not in text
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    store = KeyStore.read(path)
    who = store.authenticate(key)
    assert who is not None and who.scopes == ("predict", "read")
    assert store.authenticate(key[:-1] + ("A" if key[-1] != "A" else "B")) is None
    assert store.authenticate("not-a-key") is None
    assert main(["keys", "list", str(path)]) == 0
    assert f"{who.key_id}  ehr  predict,read" in capsys.readouterr().out
    assert main(["keys", "revoke", str(path), who.key_id]) == 0
    assert KeyStore.read(path).authenticate(key) is None


def test_bad_key_files_and_scopes_are_refused_with_the_reason(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="scopes among predict, read, admin"):
        new_key("x", ["write"])
    bad = tmp_path / "keys.json"
    bad.write_text(json.dumps({"format": "ehrpredict-keys", "keys": [{"id": "a", "name": "n"}]}))
    with pytest.raises(ConfigError, match=r"keys\[0\]"):
        KeyStore.read(bad)
    with pytest.raises(ConfigError, match="ehrpredict keys add"):
        KeyStore.read(tmp_path / "absent.json")


def test_session_cookies_are_signed_and_expire() -> None:
    signer = SessionSigner.from_file(None)
    who = Principal("k1", ("read",))
    cookie = signer.sign(who, seconds=60, now=1000.0)
    assert signer.check(cookie, now=1030.0) == who
    assert signer.check(cookie, now=1061.0) is None  # expired
    payload, mac = cookie.split(".")
    assert signer.check(payload + "." + mac[:-1] + ("A" if mac[-1] != "A" else "B"), now=1030.0) is None
    assert SessionSigner.from_file(None).check(cookie, now=1030.0) is None  # another server's secret


def test_serve_refuses_to_start_without_keys_or_with_a_broken_bundle(tmp_path: Path, bundle_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", str(bundle_path)]) == 1
    assert "no anonymous access" in capsys.readouterr().err
    keys = tmp_path / "keys.json"
    main(["keys", "add", str(keys), "--name", "t"])
    capsys.readouterr()
    broken = tmp_path / "broken"
    broken.mkdir()
    assert main(["serve", str(broken), "--keys", str(keys)]) == 1
    assert "manifest" in capsys.readouterr().err
