"""ednaquery.loaders: safe YAML (tags never constructed), JSON, TOML, and every way a read fails."""
from __future__ import annotations

import builtins
import json
import os
from pathlib import Path

import pytest

from ednaquery.errors import EdnaError, LoadError
from ednaquery.loaders import MAX_VALUES, format_for, load_file, load_text


def docs(text: str, fmt: str = "yaml") -> list:
    return load_text(text, fmt).documents


# ---------------------------------------------------------------- YAML semantics


def test_yaml_keeps_yaml11_scalars_and_does_not_coerce_numeric_strings() -> None:
    d = docs("lr: 1e-3\nlr2: 1.0e-3\nbs: 32\nflag: yes\noff_: off\nnone: ~\nname: vit\n")[0]
    assert d == {"lr": "1e-3", "lr2": 0.001, "bs": 32, "flag": True, "off_": False, "none": None, "name": "vit"}


def test_anchors_and_merge_keys() -> None:
    d = docs("base: &b {lr: 0.1, wd: 0.0}\nexp:\n  <<: *b\n  wd: 0.05\nlist: [*b, *b]\n")[0]
    assert d["exp"] == {"lr": 0.1, "wd": 0.05}
    assert d["list"] == [{"lr": 0.1, "wd": 0.0}] * 2
    d["list"][0]["lr"] = 9  # aliases are independent copies: editing one leaves the other
    assert d["list"][1]["lr"] == 0.1 and d["base"]["lr"] == 0.1


def test_non_string_keys_become_the_key_as_written() -> None:
    d = docs("1: a\n2.50: b\ntrue: c\non: d\n~: e\n[x, y]: f\n")[0]
    assert d == {"1": "a", "2.50": "b", "true": "c", "on": "d", "~": "e", '["x", "y"]': "f"}


def test_timestamps_sets_binary_and_omap_are_json_able() -> None:
    d = docs("day: 2024-03-01\nat: 2001-12-14t21:59:43.10-05:00\ns: !!set {a, b}\n"
             "bin: !!binary aGVs\n  bG8=\nom: !!omap [x: 1, y: 2]\n")[0]
    assert d["day"] == "2024-03-01"
    assert d["at"].startswith("2001-12-14T21:59:43.1")
    assert d["s"] == ["a", "b"] and d["bin"] == "aGVsbG8=" and d["om"] == {"x": 1, "y": 2}
    json.dumps(d)


@pytest.mark.parametrize("text, expected, tag", [
    ("SIZES: !!python/object/apply:eval ['[x * 2 for x in [1, 2]]']\n", {"SIZES": ["[x * 2 for x in [1, 2]]"]},
     "!!python/object/apply:eval"),
    ("act: !!python/name:torch.nn.ReLU ''\n", {"act": "torch.nn.ReLU"}, "!!python/name:torch.nn.ReLU"),
    ("t: !!python/tuple [1, 2]\n", {"t": [1, 2]}, "!!python/tuple"),
    ("o: !!python/object:foo.Bar {x: 1}\n", {"o": {"x": 1}}, "!!python/object:foo.Bar"),
    ("b: !Ref MyBucket\nn: !Custom 12\n", {"b": "MyBucket", "n": 12}, "!Ref"),
    ("x: !!python/object/new:os.system [ls]\n", {"x": ["ls"]}, "!!python/object/new:os.system"),
])
def test_python_and_unknown_tags_are_kept_as_plain_data_with_a_warning(text: str, expected: dict, tag: str) -> None:
    r = load_text(text, "yaml")
    assert r.documents == [expected]
    assert any(tag in w and "line 1" in w for w in r.warnings), r.warnings


def test_hostile_yaml_runs_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "pwned"
    called = []
    monkeypatch.setattr(builtins, "eval", lambda *a, **k: called.append(a))
    monkeypatch.setattr(os, "system", lambda *a, **k: called.append(a))
    f = tmp_path / "evil.yaml"
    f.write_text(f'a: !!python/object/apply:os.system ["touch {marker}"]\n'
                 f'b: !!python/object/apply:subprocess.call [["touch", "{marker}"]]\n'
                 'c: !!python/object/apply:eval ["__import__(\'os\').getcwd()"]\n'
                 'ok: 1\n')
    r = load_file(f)
    assert not marker.exists() and not called
    assert r.documents[0]["ok"] == 1
    assert r.documents[0]["a"] == [f"touch {marker}"]
    assert len(r.warnings) == 3


def test_multi_document_and_empty_yaml() -> None:
    assert docs("a: 1\n---\nb: 2\n---\n") == [{"a": 1}, {"b": 2}]
    assert docs("") == [] and docs("# only a comment\n\n# another\n") == [] and docs("---\n...\n") == []


def test_leading_comment_directives_are_reported() -> None:
    r = load_text("# @package _global_\n# text\nx: 1\n# @package not_this\n", "yaml")
    assert r.directives == {"package": "_global_"}


def test_yaml_syntax_error_has_line_and_column() -> None:
    with pytest.raises(LoadError) as ei:
        load_text("MODEL:\n  EMB_DIM: 512\n  SOFT_DIM:12\n  NORM: bn\n", "yaml")
    e = ei.value
    assert isinstance(e, EdnaError)
    assert e.line == 3 and "line 3" in str(e) and "\n" not in str(e)


def test_bad_explicit_scalar_tag_names_the_line() -> None:
    with pytest.raises(LoadError, match=r"line 2, column 4: 'abc' is not a valid !!int"):
        load_text("a: 1\nb: !!int abc\n", "yaml")


def test_recursive_alias_and_alias_bomb_are_refused() -> None:
    with pytest.raises(LoadError, match="recursive alias"):
        load_text("x: &a [1, *a]\n", "yaml")
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for prev, cur in zip("abcdefg", "bcdefgh"):
        lines.append(f"{cur}: &{cur} [" + ", ".join([f"*{prev}"] * 10) + "]")
    with pytest.raises(LoadError, match=f"more than {MAX_VALUES:,} values"):
        load_text("\n".join(lines) + "\n", "yaml")


# ---------------------------------------------------------------- JSON, JSON Lines, TOML


def test_json_nan_kept_and_errors_located() -> None:
    d = docs('{"a": NaN, "b": [1, 2.5], "c": "1e-3"}', "json")[0]
    assert d["a"] != d["a"] and d["b"] == [1, 2.5] and d["c"] == "1e-3"
    assert docs("  \n", "json") == []
    with pytest.raises(LoadError) as ei:
        load_text('{\n  "a": 1,\n  "b": }\n', "json")
    assert ei.value.line == 3 and ei.value.column == 8


def test_jsonl_ignores_only_a_torn_last_line() -> None:
    r = load_text('{"a": 1}\n\n{"b": 2}\n{"c"', "jsonl")
    assert r.documents == [{"a": 1}, {"b": 2}] and r.warnings
    with pytest.raises(LoadError, match="line 2"):
        load_text('{"a": 1}\n{"b\n{"c": 3}\n', "jsonl")


def test_toml_dates_become_strings_and_errors_are_located() -> None:
    d = docs('[optim]\nlr = 1e-3\nwhen = 1979-05-27T07:32:00Z\nday = 1979-05-27\n', "toml")[0]
    assert d == {"optim": {"lr": 0.001, "when": "1979-05-27T07:32:00+00:00", "day": "1979-05-27"}}
    assert docs("# nothing\n", "toml") == []
    with pytest.raises(LoadError) as ei:
        load_text("a = 1\nb = = 2\n", "toml")
    assert ei.value.line == 2


def test_format_for_and_unknown_format() -> None:
    assert [format_for(n) for n in ("a.yaml", "b.YML", "c.json", "d.toml", "e.jsonl", "f.txt")] == \
        ["yaml", "yaml", "json", "toml", "jsonl", None]
    with pytest.raises(LoadError, match="unsupported format"):
        load_text("x", "ini")


# ---------------------------------------------------------------- files


def test_load_file_reports_size_and_mtime(tmp_path: Path) -> None:
    f = tmp_path / "c.yml"
    f.write_text("a: 1\n")
    r = load_file(f)
    assert r.documents == [{"a": 1}] and r.size == 5 and r.mtime == pytest.approx(f.stat().st_mtime)


@pytest.mark.parametrize("content, match", [
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary file"),
    (b"a: \xff\xfe\xfa\n", "not UTF-8"),
])
def test_binary_files_are_load_errors(tmp_path: Path, content: bytes, match: str) -> None:
    f = tmp_path / "x.yaml"
    f.write_bytes(content)
    with pytest.raises(LoadError, match=match) as ei:
        load_file(f)
    assert str(f) in str(ei.value) and ei.value.detail in str(ei.value)


def test_file_over_the_size_limit(tmp_path: Path) -> None:
    f = tmp_path / "big.json"
    f.write_text('{"a": "' + "x" * 2000 + '"}')
    with pytest.raises(LoadError, match="over the 1,000-byte limit"):
        load_file(f, max_bytes=1000)
    assert load_file(f, max_bytes=5000).documents


def test_a_file_that_grows_while_read_is_read_whole_or_refused(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The reader asks for the size fstat gave; a writer still appending must not cut the file short."""
    f = tmp_path / "growing.yaml"
    f.write_text("".join(f"k{i}: {i}\n" for i in range(300)))  # about 2.7 kB
    real_fstat = os.fstat

    def stale_fstat(fd):  # the size from before the writer's last appends
        st = real_fstat(fd)
        return os.stat_result((st.st_mode, st.st_ino, st.st_dev, st.st_nlink, st.st_uid, st.st_gid, 10,
                               st.st_atime, st.st_mtime, st.st_ctime))
    monkeypatch.setattr(os, "fstat", stale_fstat)
    doc = load_file(f).documents[0]
    assert len(doc) == 300 and doc["k299"] == 299
    with pytest.raises(LoadError, match="grew past the 1,000-byte limit"):
        load_file(f, max_bytes=1000)


def test_vanished_and_unreadable_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(LoadError, match="vanished"):
        load_file(tmp_path / "gone.yaml")
    f = tmp_path / "secret.yaml"
    f.write_text("a: 1\n")
    real_open = os.open

    def deny(file, *a, **k):  # tests run as root, so chmod 000 would not block reads
        if os.fspath(file) == str(f):
            raise PermissionError(13, "Permission denied", str(f))
        return real_open(file, *a, **k)

    monkeypatch.setattr(os, "open", deny)
    with pytest.raises(LoadError, match="permission denied"):
        load_file(f)


def test_folder_and_unknown_extension(tmp_path: Path) -> None:
    d = tmp_path / "d.yaml"
    d.mkdir()
    with pytest.raises(LoadError, match="folder"):
        load_file(d)
    with pytest.raises(LoadError, match="unsupported file type"):
        load_file(tmp_path / "notes.txt")


def test_named_pipe_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    with pytest.raises(LoadError, match="not a regular file"):
        load_file(fifo)
