"""How big ednaquery's MongoDB documents and index entries are: the figures behind docs/deploy.md "Scale-out".

    .venv/bin/python bench/doc_sizes.py              # 2000 sweep configs + as many runs, and the real corpora
    .venv/bin/python bench/doc_sizes.py --n 20000

For generated sweep configs (bench/sweepgen.py), run documents over them (summary metrics, as
the trainer writes them) and the real configs in ../shared/corpora (through the indexer's own
converter), it builds each document exactly as MongoStore stores it (``stored_form``: config
leaves + reserved leaves + internal fields) and prints per document:

- BSON bytes (``bson.encode``: the uncompressed size, which is what WiredTiger's cache holds;
  on disk snappy makes it smaller);
- leaves, and index entries: each of the four ``(leaves.p, leaves.<field>)`` multikey indexes
  holds one key per distinct leaf (a leaf without the field is indexed under null), plus one
  key each in ``_id_``, ``kind_current``, ``paths``, ``past_paths`` and ``depends_on``;
- raw index key bytes: the key values' BSON sizes plus a 10-byte record id per key, before
  WiredTiger's prefix compression (which shares the repeated ``leaves.p`` prefixes);
- prefix-compressed index bytes: every index's keys sorted as the B-tree holds them, each
  stored as what differs from the previous key plus 9 bytes (record id, cell headers): a
  simulation of WiredTiger's index prefix compression, which applies on disk AND in the cache;
- with ``cramjam`` importable (``pip install cramjam``, not a project dependency): the data
  compressed with snappy in 32 KB pages, as WiredTiger stores collections on disk.

Then documents and leaves per GB of data and of index. No server is involved: these are
computed and simulated figures; ``db.docs.stats()`` on a real server gives the real ones.
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bson
from sweepgen import make_config

from ednaquery.documents import make_config_document, make_run_document
from ednaquery.store.mongo import INDEXES, stored_form

RID = 10  # bytes of a record id + per-key overhead in a WiredTiger index entry (a rough figure)
LEAF_FIELDS = [keys[1][0].split(".", 1)[1] for name, keys in INDEXES if keys[0][0] == "leaves.p"]


def _bson_value_size(v) -> int:
    """Bytes of one value inside a BSON key (type byte, empty field name, the value)."""
    return len(bson.encode({"": v})) - 5


def index_figures(stored: dict) -> tuple[int, int]:
    """(index entries, raw key bytes) that one stored document adds to the docs indexes."""
    entries = 0
    size = 0
    for field in LEAF_FIELDS:  # one multikey key per distinct (p, field) pair of the document
        keys = {(lf["p"], repr(lf.get(field))) for lf in stored["leaves"]}
        entries += len(keys)
        for lf in {(lf["p"], repr(lf.get(field))): lf for lf in stored["leaves"]}.values():
            size += _bson_value_size(lf["p"]) + _bson_value_size(lf.get(field)) + RID
    for name in ("_id", "kind", "paths", "past_paths", "depends_on"):
        vals = stored.get(name)
        vals = vals if isinstance(vals, list) and vals else [vals]
        entries += len(vals)
        size += sum(_bson_value_size(v) + RID for v in vals)
    size += _bson_value_size(stored.get("current"))  # kind_current's second key
    return entries, size


def _key(v) -> bytes:
    """About how a value sorts and weighs in an index key (type byte + value, strings NUL-ended)."""
    if v is None or isinstance(v, bool):
        return b"\x05"
    if isinstance(v, (int, float)):
        return b"\x10" + bson.encode({"": float(v)})[7:-1]
    return b"\x3c" + str(v).encode() + b"\x00"


def prefix_compressed(stored: list[dict]) -> float:
    """Bytes per document of all docs indexes with WiredTiger-style prefix compression (simulated)."""
    total = 0
    index_keys: list[list[bytes]] = [[] for _ in LEAF_FIELDS] + [[] for _ in range(5)]
    for d in stored:
        for i, field in enumerate(LEAF_FIELDS):
            index_keys[i] += list({_key(lf["p"]) + _key(lf.get(field)) for lf in d["leaves"]})
        for j, name in enumerate(("_id", "kind", "paths", "past_paths", "depends_on")):
            vals = d.get(name)
            vals = vals if isinstance(vals, list) and vals else [vals]
            extra = _key(d.get("current")) if name == "kind" else b""
            index_keys[len(LEAF_FIELDS) + j] += [_key(v) + extra for v in vals]
    for keys in index_keys:
        keys.sort()
        prev = b""
        for k in keys:
            shared = 0
            for a, b in zip(prev, k):
                if a != b:
                    break
                shared += 1
            total += len(k) - shared + 9
            prev = k
    return total / len(stored)


def snappy_pages(stored: list[dict], page: int = 32 * 1024) -> float | None:
    """Bytes per document on disk with snappy over 32 KB pages, or None without cramjam."""
    try:
        import cramjam
    except ImportError:
        return None
    raw = [bson.encode(s) for s in stored]
    out, buf = 0, b""
    for r in raw:
        buf += r
        if len(buf) >= page:
            out += len(cramjam.snappy.compress_raw(buf))
            buf = b""
    if buf:
        out += len(cramjam.snappy.compress_raw(buf))
    return out / len(stored)


def measure(label: str, docs: list[dict]) -> dict:
    stored = [stored_form(d, 1) for d in docs]
    sizes = [len(bson.encode(s)) for s in stored]
    leaves = [len(s["leaves"]) for s in stored]
    idx = [index_figures(s) for s in stored]
    row = {
        "label": label, "n": len(docs), "bson": statistics.mean(sizes), "bson_max": max(sizes),
        "leaves": statistics.mean(leaves), "entries": statistics.mean(e for e, _ in idx),
        "index_bytes": statistics.mean(b for _, b in idx), "index_prefix": prefix_compressed(stored),
        "disk": snappy_pages(stored),
    }
    disk = f"  on disk (snappy) {row['disk']:6.0f} B" if row["disk"] else ""
    print(f"{label:34s} n={row['n']:>6}  BSON avg {row['bson']:6.0f} B (max {row['bson_max']:6d}){disk}  "
          f"leaves {row['leaves']:5.1f}  index entries {row['entries']:5.1f}  index raw {row['index_bytes']:6.0f} B"
          f", prefix-compressed {row['index_prefix']:5.0f} B")
    return row


def corpora_docs() -> list[dict]:
    root = Path(__file__).resolve().parents[2] / "shared" / "corpora"
    if not root.is_dir():
        return []
    from indexer.convert import convert_path

    docs = []
    for p in sorted(root.rglob("*")):
        if p.suffix in (".yaml", ".yml") and p.is_file():
            docs += [d for d in convert_path(p) if d["kind"] == "config"]
    return docs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=2000, help="sweep configs (and runs) to generate")
    args = ap.parse_args()
    rng = random.Random(0)
    configs = [make_config(i, rng) for i in range(args.n)]
    cdocs = [make_config_document(c, path=f"/lab/alice/sweep/group{i // 100:04d}/cfg{i:06d}.yaml", format="yaml",
                                  size=1200, mtime=1.7e9) for i, c in enumerate(configs)]
    rdocs = [make_run_document(f"20261122-{i:06d}-{i % 65536:04x}", config=c, config_id=cdocs[i]["_id"],
                               path=f"/lab/alice/runs/{i:06d}", status="done",
                               metrics={m: {"last": rng.random(), "best": rng.random()}
                                        for m in ("train_loss", "val_loss", "val_acc", "val_top5", "lr")},
                               info={"host": "gpu1", "gpu": "NVIDIA H100", "epochs_done": 100, "torch": "2.4"},
                               started_at=1.7e9, ended_at=1.7e9 + 3600, mtime=1.7e9)
             for i, c in enumerate(configs)]
    rows = [measure("sweep configs (bench/sweepgen.py)", cdocs), measure("runs over them (5 metrics)", rdocs)]
    real = corpora_docs()
    if real:
        rows.append(measure("real configs (shared/corpora)", real))
    mixed = measure("mix: sweep configs + runs, 1:1", cdocs + rdocs)
    print()
    gb = 1e9
    print("per GB (1e9 bytes):")
    for row in [*rows, mixed]:
        print(f"  {row['label']:34s} data (BSON, as cached) {gb / row['bson']:>9,.0f} docs = "
              f"{gb * row['leaves'] / row['bson'] / 1e6:5.1f} M leaves;  index (prefix-compressed) "
              f"{gb / row['index_prefix']:>9,.0f} docs = {gb * row['leaves'] / row['index_prefix'] / 1e6:5.1f} M leaves"
              + (f";  on disk data+index {gb / (row['disk'] + row['index_prefix']):>9,.0f} docs" if row["disk"] else ""))
    print(f"\n(index: {len(LEAF_FIELDS)} leaf indexes x leaves + 5 single keys; raw = {RID} B record id per key, "
          "no compression; prefix-compressed = simulated WiredTiger index prefix compression)")
    print(f"16 MiB / avg mixed document = {16 * 2**20 / mixed['bson']:,.0f}x headroom; "
          f"largest document seen: {max(r['bson_max'] for r in [*rows, mixed]):,} B")


if __name__ == "__main__":
    main()
