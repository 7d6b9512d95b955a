"""The daemon re-reads tags and notes: a changed annotations sidecar re-converts the files beside it."""
from __future__ import annotations

from pathlib import Path

from ednaquery.annotations import SIDECAR, write_annotation
from indexer.convert import convert_path
from tests.support.indexer import FakeStore
from tests.support.wait import wait_until


def _annotations(store: FakeStore, path: Path) -> dict | None:
    with store.lock:
        docs = store.docs.get(str(path)) or []
    return docs[0].get("annotations") if docs else None


def test_a_changed_sidecar_reconverts_the_annotated_file(make_indexer, fake_store: FakeStore, root: Path) -> None:
    ix = make_indexer(root, convert=convert_path)
    ix.start()
    assert ix.wait_idle(5)
    cfg = root / "exp" / "resnet.yaml"
    cfg.parent.mkdir()
    cfg.write_text("model: resnet18\nlr: 0.1\n")
    assert wait_until(lambda: str(cfg) in fake_store.docs)
    assert _annotations(fake_store, cfg) is None
    write_annotation(str(cfg), {"tags": ["baseline"], "note": "first try"}, is_run=False)
    assert wait_until(lambda: _annotations(fake_store, cfg) == {"tags": ["baseline"], "note": "first try"})
    with fake_store.lock:
        assert not fake_store.docs.get(str(cfg.parent / SIDECAR))  # the sidecar is no document
    write_annotation(str(cfg), {}, is_run=False)  # the last entry goes: the sidecar is removed
    assert not (cfg.parent / SIDECAR).exists()
    assert wait_until(lambda: _annotations(fake_store, cfg) is None)
