"""Passwords never leave in a URI or a message: ednaquery.masking, and the CLI's one error printer."""
from __future__ import annotations

import click
import pytest

from ednaquery.clikit import App, print_error
from ednaquery.errors import EdnaError, StoreUnavailable
from ednaquery.masking import mask_uri, redact, uri_passwords


@pytest.mark.parametrize("uri, masked", [
    ("mongodb://alice:s3cr3t@db.example.org:27017/eq?authSource=admin",
     "mongodb://alice:***@db.example.org:27017/eq?authSource=admin"),
    ("mongodb://alice:p%40ss%3Aw0rd@db:27017/eq", "mongodb://alice:***@db:27017/eq"),
    ("mongodb+srv://bob:hunter2@cluster0.example.net/eq?retryWrites=true",
     "mongodb+srv://bob:***@cluster0.example.net/eq?retryWrites=true"),
    ("mongodb://carol:pw@h1:27017,h2:27018,h3/eq?replicaSet=rs0",
     "mongodb://carol:***@h1:27017,h2:27018,h3/eq?replicaSet=rs0"),
    ("mongodb://dave:p@ss@db/eq", "mongodb://dave:***@db/eq"),  # an unencoded @ stays in the password
    ("mongodb://:onlypw@db/eq", "mongodb://:***@db/eq"),
    ("mongodb://erin@db/eq", "mongodb://erin@db/eq"),  # a user without a password
    ("mongodb://db:27017/eq", "mongodb://db:27017/eq"),
    ("mongodb://db/eq?tls=true&tlsCertificateKeyFilePassword=k3y",
     "mongodb://db/eq?tls=true&tlsCertificateKeyFilePassword=***"),
    ("sqlite:///home/me/.ednaquery/index.db", "sqlite:///home/me/.ednaquery/index.db"),
    ("/home/me/index.db", "/home/me/index.db"),
])
def test_mask_uri(uri, masked):
    assert mask_uri(uri) == masked


def test_uri_passwords_as_written_and_decoded():
    assert uri_passwords("mongodb://a:p%40ss@db/eq") == ["p%40ss", "p@ss"]
    assert uri_passwords("mongodb://a:plain@h1,h2/eq") == ["plain"]
    assert uri_passwords("mongodb://db/eq?tlsCertificateKeyFilePassword=k3y") == ["k3y"]
    assert uri_passwords("mongodb://a@db/eq") == [] == uri_passwords("/a/b.db") == uri_passwords(None)


def test_redact_removes_known_passwords_and_any_uri_password_in_the_text():
    uri = "mongodb://alice:p%40ss@db:27017/eq"
    text = f"auth failed for {uri}: password 'p@ss' rejected; raw p%40ss"
    out = redact(text, [uri])
    assert "p@ss" not in out and "p%40ss" not in out
    assert "mongodb://alice:***@db:27017/eq" in out
    # a URI the caller did not name is still masked where it is written in full
    assert redact("see mongodb://bob:hunter2@other/eq now") == "see mongodb://bob:***@other/eq now"
    assert redact("no secrets here: mongodb://db:27017/eq") == "no secrets here: mongodb://db:27017/eq"


def test_the_error_printer_masks_every_error_it_prints(capsys, monkeypatch):
    monkeypatch.delenv("EDNAQUERY_STORE", raising=False)
    uri = "mongodb://alice:s3cr%3At@db.example.org/eq"
    ctx = click.Context(click.Command("x"), obj=App(store=uri))
    for exc, code in ((EdnaError(f"something about {uri} and s3cr:t"), 1),
                      (RuntimeError("the server said s3cr%3At is wrong\nsecond line"), 1),
                      (StoreUnavailable("down"), 2)):
        assert print_error(exc, ctx) == code
        err = capsys.readouterr().err
        assert "s3cr" not in err and err.startswith("error: ") and err.count("\n") == 1
    # a --store given to the command itself (not the group) is masked too
    ctx = click.Context(click.Command("x"))
    ctx.params["store_uri"] = "mongodb://u:topsecret@h/eq"
    print_error(EdnaError("rejected topsecret"), ctx)
    assert "topsecret" not in capsys.readouterr().err
