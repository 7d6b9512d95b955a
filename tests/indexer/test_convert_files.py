"""convert_path on single files: config documents, error records, and files that give nothing."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from indexer.convert import convert_path, core


def write(root: Path, rel: str, text: str | bytes) -> Path:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        p.write_bytes(text)
    else:
        p.write_text(text)
    return p


def test_yaml_json_toml_configs(tmp_path: Path) -> None:
    y = convert_path(write(tmp_path, "a.yaml", "optimizer: {lr: 1e-3}\nmodel: vit\n"))
    j = convert_path(write(tmp_path, "b.json", '{"optimizer": {"lr": "1e-3"}, "model": "vit"}'))
    t = convert_path(write(tmp_path, "c.toml", 'model = "vit"\n[optimizer]\nlr = "1e-3"\n'))
    assert [d["format"] for d in y + j + t] == ["yaml", "json", "toml"]
    assert y[0]["_id"] == j[0]["_id"] == t[0]["_id"]  # same content, same id
    assert y[0]["size"] == (tmp_path / "a.yaml").stat().st_size and y[0]["mtime"] is not None


def test_converting_twice_gives_the_same_document(tmp_path: Path) -> None:
    f = write(tmp_path, "a.yaml", "_BASE_: base.yaml\nx: 1\n")
    write(tmp_path, "base.yaml", "y: 2\n")
    a, b = convert_path(f), convert_path(f)
    strip = [{k: v for k, v in d.items() if k != "indexed_at"} for d in a + b]
    assert strip[0] == strip[1]


def test_multi_document_yaml_gives_several_documents(tmp_path: Path) -> None:
    docs = convert_path(write(tmp_path, "m.yaml", "a: 1\n---\nb: 2\n---\na: 1\n---\n"))
    assert [d["config"] for d in docs] == [{"a": 1}, {"b": 2}]  # identical documents once
    assert all(d["paths"] == [str(tmp_path / "m.yaml")] for d in docs)


def test_empty_and_comment_only_files_give_no_documents(tmp_path: Path) -> None:
    assert convert_path(write(tmp_path, "e.yaml", "")) == []
    assert convert_path(write(tmp_path, "c.yml", "# nothing here\n")) == []
    assert convert_path(write(tmp_path, "e.json", "\n")) == []


def test_other_files_give_nothing(tmp_path: Path) -> None:
    assert convert_path(write(tmp_path, "notes.txt", "hello")) == []
    assert convert_path(write(tmp_path, "stray.jsonl", '{"a": 1}\n')) == []
    assert convert_path(tmp_path) == []  # a folder that is not a run


@pytest.mark.parametrize("name, content, needle", [
    ("bad.yaml", "a: [1, 2\nb: 3\n", "line 2, column 2"),
    ("bad.json", '{"a": 1,,}', "line 1, column 9"),
    ("bad.toml", "a = \n", "line 1"),
    ("bin.yaml", b"\x00\x01\x02PK\x03\x04", "binary"),
    ("latin.yml", b"name: caf\xe9\n", "not UTF-8"),
])
def test_unparsable_files_become_error_records(tmp_path: Path, name: str, content: str | bytes, needle: str) -> None:
    f = write(tmp_path, name, content)
    docs = convert_path(f)
    assert len(docs) == 1
    e = docs[0]
    assert e["kind"] == "error" and needle in e["error"] and e["paths"] == [str(f)]
    assert e["mtime"] == pytest.approx(f.stat().st_mtime) and e["size"] == f.stat().st_size
    assert str(f) not in e["error"]  # the path is its own field


def test_huge_file_is_an_error_record(tmp_path: Path) -> None:
    f = write(tmp_path, "big.yaml", "x: " + "a" * 5000 + "\n")
    [e] = convert_path(f, max_bytes=1000)
    assert e["kind"] == "error" and "limit" in e["error"] and e["size"] == f.stat().st_size


def test_vanished_file_is_an_error_record(tmp_path: Path) -> None:
    f = write(tmp_path, "gone.yaml", "a: 1\n")
    st = f.stat()
    f.unlink()
    [e] = convert_path(f, stat=st)
    assert e["kind"] == "error" and "vanished" in e["error"] and e["mtime"] == st.st_mtime


def test_permission_denied_is_an_error_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = write(tmp_path, "locked.yaml", "a: 1\n")
    real_open = os.open

    def deny(file, *a, **k):  # root ignores chmod 000, so simulate the refusal
        if os.fspath(file) == str(f):
            raise PermissionError(13, "Permission denied", str(f))
        return real_open(file, *a, **k)

    monkeypatch.setattr(os, "open", deny)
    [e] = convert_path(f)
    assert e["kind"] == "error" and "permission denied" in e["error"]


def test_hostile_file_runs_nothing_and_is_indexed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    f = write(tmp_path, "evil.yaml", f'cmd: !!python/object/apply:os.system ["touch {marker}"]\nlr: 0.1\n')
    [doc] = convert_path(f)
    assert not marker.exists()
    assert doc["kind"] == "config" and doc["config"] == {"cmd": [f"touch {marker}"], "lr": 0.1}
    assert "!!python/object/apply:os.system" in doc["warnings"][0]


def test_an_internal_error_becomes_an_error_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = write(tmp_path, "a.yaml", "a: 1\n")

    def boom(*a: object, **k: object) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(core, "resolve", boom)
    [e] = convert_path(f)
    assert e["kind"] == "error" and "internal error" in e["error"] and "bug" in e["error"]
