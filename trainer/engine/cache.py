"""The prepared image cache: each image of a folder decoded once, stored aspect-preserving as uint8.

A cache holds every image of an ``imagefolder:`` dataset, decoded in parallel across the cores
available to the process and resized so that its short side is the stored size: antialiased
bicubic (timm's default interpolation; torch's uint8 kernel, within 0.01 grey level of PIL's), the
size rounded as torchvision's ``Resize(int)``, so with the default stored size an image is what
timm's eval transform resizes it to. JPEGs
at least 4x the stored size are decoded with DCT scaling first (``Image.draft``, 2-8x faster),
which leaves them within about a grey level of a full decode.
The pixels lie channel-last (``[H, W, C]``, as decoded) in shard files of up to :data:`SHARD_BYTES`,
one series per build thread (each decodes a slice of the folder straight into its own shards),
read through ``np.memmap``; ``index.npz`` gives each image's shard, byte offset, shape, label and
relative path (the layout of FFCV's ``.beton`` files, without the compression). Reading an image is a slice.

The key is a hash of the folder's content (relative paths, sizes, mtimes, labels), the size
settings and :data:`FORMAT_VERSION`; any change makes a new key, so a stale cache is never read.
Building is crash-safe: everything is written into a ``.tmp-*`` folder, the ``COMPLETE`` marker
last, then the folder is renamed to its key in one step; a folder without the marker is never
trusted. An exclusive ``flock`` on ``<key>.build`` makes one process build while the others (DDP
ranks, parallel runs) wait; users hold a shared ``flock`` on ``<key>.lock``, so eviction and
``trainer cache rm`` skip a cache in use. Total size is capped: the least recently used whole
caches are evicted.
"""
from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import logging
import os
import shutil
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from trainer.errors import DataError

if TYPE_CHECKING:  # torch is imported where used: listing and evicting caches do not need it
    import torch

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
SHARD_BYTES = 1 << 30
MARKER = "COMPLETE"
INDEX = "index.npz"
LAST_USED = "last_used"
DEFAULT_MAX_GB = 100.0


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def default_cache_dir() -> Path:
    """``$EDNAQUERY_TRAINER_CACHE``, else ``$XDG_CACHE_HOME/ednaquery/trainer`` (``~/.cache`` by default)."""
    env = os.environ.get("EDNAQUERY_TRAINER_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(base).expanduser() / "ednaquery" / "trainer"


def stored_dims(h: int, w: int, short_side: int) -> tuple[int, int]:
    """(height, width) an ``h x w`` image is stored at: short side ``short_side``, long side rounded as
    torchvision's ``Resize(int)`` does (so the stored image is timm's eval resize, pixel for pixel)."""
    short, long = (h, w) if h <= w else (w, h)
    new_long = int(short_side * long / short)
    return (short_side, new_long) if h <= w else (new_long, short_side)


def decode_stored(path: str | Path, short_side: int, channels: int) -> np.ndarray:
    """One image as stored in the cache: uint8 ``[H, W, C]`` with short side ``short_side``.

    Decoded by PIL, resized by torch's antialiased bicubic on uint8 (the same filter as PIL's
    bicubic, within 0.01 grey level on average, and 3x faster than ``Image.resize``).
    """
    import torch
    from PIL import Image

    mode = "L" if channels == 1 else "RGB"
    try:
        with Image.open(path) as im:
            th, tw = stored_dims(im.size[1], im.size[0], short_side)
            # an RGB JPEG that DCT scaling would not shrink: torchvision's libjpeg-turbo decoder gives the
            # same pixels as PIL's in about half the time (0.64 against 1.14 ms for 400x350)
            fast = im.format == "JPEG" and channels == 3 and (im.size[0] < 4 * tw or im.size[1] < 4 * th)
            if not fast:
                if (th, tw) != (im.size[1], im.size[0]):
                    im.draft(mode, (2 * tw, 2 * th))  # JPEG >= 4x the target: DCT-domain downscaling first
                arr = np.array(im.convert(mode), dtype=np.uint8)
        if fast:
            arr = _decode_jpeg_rgb(path)
    except (OSError, ValueError, RuntimeError) as exc:
        raise DataError(f"cannot decode {path}: {exc}") from None
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.shape[:2] != (th, tw):
        x = torch.from_numpy(arr).permute(2, 0, 1)[None]  # channels-last: torch's fast uint8 path
        return to_hwc(resize(x, (th, tw))[0])
    return np.ascontiguousarray(arr)


def to_hwc(chw: torch.Tensor) -> np.ndarray:
    """A contiguous uint8 ``[H, W, C]`` array of a ``[C, H, W]`` tensor (torch's resize answers planes).

    OpenCV interleaves the planes in 0.006 ms for 256x318; numpy's or torch's transposing copy takes
    0.25 ms, a fifth of a build's time per image.
    """
    import cv2

    planes = chw.contiguous().numpy()
    if planes.shape[0] == 1:
        return planes.reshape(*planes.shape[1:], 1)
    return cv2.merge(list(planes))


def resize(x: torch.Tensor, out_hw: tuple[int, int]) -> torch.Tensor:
    """Antialiased bicubic resize (timm's default interpolation) of ``[N, C, h, w]`` (uint8 stays uint8);
    ``x`` itself when it is already ``out_hw``."""
    import torch
    import torch.nn.functional as F

    if tuple(x.shape[-2:]) == tuple(out_hw):
        return x
    y = F.interpolate(x, size=tuple(out_hw), mode="bicubic", align_corners=False, antialias=True)
    return y if y.dtype == torch.uint8 else y.clamp_(0, 255)


# torchvision 0.29 marks its image codecs deprecated in favour of torchcodec; they are what this project pins
warnings.filterwarnings("ignore", message="The image decoding and encoding capabilities of TorchVision",
                        category=DeprecationWarning)


def _decode_jpeg_rgb(path: str | Path) -> np.ndarray:
    """uint8 ``[H, W, 3]`` of a JPEG by torchvision's decoder (PIL's where torchvision cannot, e.g. CMYK)."""
    from PIL import Image
    from torchvision.io import ImageReadMode, decode_jpeg, read_file

    try:
        return decode_jpeg(read_file(str(path)), mode=ImageReadMode.RGB).permute(1, 2, 0).numpy()
    except RuntimeError:
        with Image.open(path) as im:
            return np.array(im.convert("RGB"), dtype=np.uint8)


# ------------------------------------------------------------------ keys and folders


@dataclass(frozen=True)
class CacheSpec:
    """What a cache holds: these files (under ``root``) with their labels, at this size."""

    root: Path
    files: Sequence[Path]
    labels: Sequence[int]
    short_side: int
    channels: int

    def key(self) -> str:
        """Hash of the folder's content (relative paths, sizes, mtimes, labels) and the size settings."""
        h = hashlib.sha256(f"ednaquery-prepared v{FORMAT_VERSION} short={self.short_side} "
                           f"channels={self.channels} resize=torch-bicubic-aa-draft\n".encode())
        for path, label in zip(self.files, self.labels, strict=True):
            st = path.stat()
            h.update(f"{self.relpath(path)}\0{st.st_size}\0{st.st_mtime_ns}\0{int(label)}\n".encode())
        return h.hexdigest()[:24]

    def relpath(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()


def _lock(path: Path, mode: int) -> Any:
    fh = open(path, "a+")  # noqa: SIM115 - the caller owns the handle (the lock lives as long as it)
    try:
        fcntl.flock(fh, mode)
    except BaseException:  # not taken (LOCK_NB: held elsewhere), or interrupted while waiting
        fh.close()
        raise
    return fh


def is_complete(folder: Path) -> bool:
    """A published cache: the marker exists (it is written last, before the atomic rename)."""
    return (folder / MARKER).is_file() and (folder / INDEX).is_file()


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())


def _size(nbytes: int) -> str:
    return f"{nbytes / 2**30:.2f} GB" if nbytes >= 2**30 else f"{nbytes / 2**20:.1f} MB"


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ------------------------------------------------------------------ reading


class PreparedImages:
    """A published cache opened for reading: ``images[i]`` is an ``[H, W, C]`` uint8 view of a memmap."""

    def __init__(self, folder: Path, lock: Any = None) -> None:
        self.folder = Path(folder)
        self._lock = lock  # shared flock: eviction and `cache rm` leave this cache alone while it is open
        with np.load(self.folder / INDEX, allow_pickle=False) as z:
            self.shard = z["shard"].astype(np.int64)
            self.offset = z["offset"].astype(np.int64)
            self.shapes = z["shape"].astype(np.int64)  # [N, 3]: H, W, C
            self.labels = z["label"].astype(np.int64)
            self.relpaths = [str(p) for p in z["relpath"]]
            self.shard_names = [str(p) for p in z["names"]]
        self.meta = json.loads((self.folder / MARKER).read_text())
        self._maps: dict[int, np.memmap] | None = None
        try:
            os.utime(self.folder / LAST_USED)
        except OSError:
            pass

    def __len__(self) -> int:
        return len(self.offset)

    def __getstate__(self) -> dict[str, Any]:  # loader workers (spawn) reopen the memmaps themselves
        state = dict(self.__dict__)
        state["_maps"], state["_lock"] = None, None
        return state

    def _map(self, shard: int) -> np.memmap:
        if self._maps is None:
            self._maps = {}
        m = self._maps.get(shard)
        if m is None:
            m = np.memmap(self.folder / self.shard_names[shard], dtype=np.uint8, mode="r")
            self._maps[shard] = m
        return m

    def __getitem__(self, i: int) -> np.ndarray:
        h, w, c = (int(v) for v in self.shapes[i])
        off = int(self.offset[i])
        return self._map(int(self.shard[i]))[off:off + h * w * c].reshape(h, w, c)

    def close(self) -> None:
        self._maps = None
        if self._lock is not None:
            self._lock.close()
            self._lock = None


# ------------------------------------------------------------------ building

#: bytes a build thread writes before it asks the kernel to start writing them to disk
WRITEBACK_BYTES = 32 << 20
#: seconds between two progress lines of a build
PROGRESS_S = 10.0
Say = Callable[[str], None]
_SYNC_FILE_RANGE_WRITE = 2


@functools.cache
def _sync_file_range() -> Any:
    """libc's ``sync_file_range`` (Linux), or None where there is none."""
    import ctypes

    try:
        fn = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    return fn


def start_writeback(fd: int, offset: int, nbytes: int) -> None:
    """Start writing a file's byte range to disk now, without waiting (Linux ``sync_file_range``).

    The kernel would otherwise hold a build's 1 GB of shards in memory until the final ``fsync``,
    which then writes it all while the build waits (0.4-0.8 s for 5,000 images); started along the
    way, the writes overlap the decoding and that ``fsync`` finds next to nothing left. A no-op where
    the call does not exist: the ``fsync`` still makes the shards durable before the marker.
    """
    fn = _sync_file_range()
    if fn is not None:
        fn(fd, offset, nbytes, _SYNC_FILE_RANGE_WRITE)  # an error only means no head start: ignored


@dataclass
class _Build:
    """What the build threads share: images done per slice (for progress) and the flag that stops them."""

    done: list[int]
    stop: threading.Event


def write_part(paths: Sequence[str], short_side: int, channels: int, folder: Path, part: int,
               build: _Build | None = None) -> None:
    """Decode ``paths`` into shard files ``part-<part>-<j>.bin`` of ``folder`` plus ``part-<part>.npz``.

    One build thread runs this for its slice of the folder: the pixels go straight to its own shards.
    It counts its images in ``build.done[part]`` and gives up between two images once ``build.stop`` is set.
    """
    n = len(paths)
    shard = np.zeros(n, np.int32)
    offset = np.zeros(n, np.int64)
    shape = np.zeros((n, 3), np.int32)
    names = [f"part{part:03d}-000.bin"]
    pos, flushed, fh = 0, 0, open(folder / names[0], "wb")  # noqa: SIM115 - rotated in the loop
    try:
        for i, path in enumerate(paths):
            if build is not None and build.stop.is_set():  # another slice failed, or the build was interrupted
                return
            arr = decode_stored(path, short_side, channels)
            if pos and pos + arr.nbytes > SHARD_BYTES:
                os.fsync(fh.fileno())
                fh.close()
                names.append(f"part{part:03d}-{len(names):03d}.bin")
                pos, flushed, fh = 0, 0, open(folder / names[-1], "wb")  # noqa: SIM115
            fh.write(arr.data)
            if pos + arr.nbytes - flushed >= WRITEBACK_BYTES:
                fh.flush()
                start_writeback(fh.fileno(), flushed, pos + arr.nbytes - flushed)
                flushed = pos + arr.nbytes
            shard[i], offset[i], shape[i] = len(names) - 1, pos, arr.shape
            pos += arr.nbytes
            if build is not None:
                build.done[part] = i + 1
        fh.flush()
        os.fsync(fh.fileno())
    finally:
        fh.close()
    with open(folder / f"part{part:03d}.npz", "wb") as f:
        np.savez(f, shard=shard, offset=offset, shape=shape, names=np.array(names, dtype=str))


def _run_parts(spec: CacheSpec, tmp: Path, workers: int, say: Say | None = None) -> int:
    """Decode the folder in ``workers`` slices at once, one thread each; progress to ``say`` every
    :data:`PROGRESS_S` seconds.

    Threads, not processes: PIL's decoder and torch's resize release the GIL, so the slices run on
    separate cores with no interpreter to start (a process per core cost more than a small folder's
    whole build) and nothing forked from a training process that holds locks in other threads. The
    first error (DataError: cannot decode ...) or an interrupt stops every slice at its next image.
    """
    from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

    files = [str(p) for p in spec.files]
    bounds = np.linspace(0, len(files), workers + 1).astype(int)
    build = _Build([0] * workers, threading.Event())
    t0 = time.perf_counter()
    with ThreadPoolExecutor(workers, thread_name_prefix="cache-build") as pool:
        pending = {pool.submit(write_part, files[bounds[k]:bounds[k + 1]], spec.short_side, spec.channels, tmp, k,
                               build) for k in range(workers)}
        try:
            while pending:
                finished, pending = wait(pending, timeout=PROGRESS_S, return_when=FIRST_EXCEPTION)
                for f in finished:
                    f.result()
                if pending and say is not None:
                    n, elapsed = sum(build.done), time.perf_counter() - t0
                    left = f", about {(len(files) - n) * elapsed / n:.0f} s left" if n else ""
                    say(f"prepared {n:,} of {len(files):,} images ({n / elapsed:,.0f} images/s{left})")
        except BaseException:
            build.stop.set()  # the other slices stop at their next image; the with block waits for them
            raise
    return workers


def _write_cache(spec: CacheSpec, tmp: Path, key: str, workers: int, say: Say | None = None) -> dict[str, Any]:
    """Build the cache into ``tmp`` (the marker last); returns the marker's metadata."""
    t0 = time.perf_counter()
    parts = _run_parts(spec, tmp, max(1, min(workers, len(spec.files) // 16 or 1)), say)
    shard, offset, shape, names = [], [], [], []
    for k in range(parts):
        with np.load(tmp / f"part{k:03d}.npz") as z:
            shard.append(z["shard"] + len(names))
            offset.append(z["offset"])
            shape.append(z["shape"])
            names.extend(str(v) for v in z["names"])
    for f in tmp.glob("part*.npz"):
        f.unlink()
    n = len(spec.files)
    rel = np.array([spec.relpath(p) for p in spec.files], dtype=str)
    with open(tmp / INDEX, "wb") as f:
        np.savez(f, shard=np.concatenate(shard), offset=np.concatenate(offset), shape=np.concatenate(shape),
                 names=np.array(names, dtype=str), label=np.asarray(spec.labels, np.int64), relpath=rel)
        f.flush()
        os.fsync(f.fileno())
    (tmp / LAST_USED).touch()
    meta = {"key": key, "format": FORMAT_VERSION, "images": n, "shards": len(names), "short_side": spec.short_side,
            "channels": spec.channels, "root": str(spec.root), "created": time.time(),
            "build_s": round(time.perf_counter() - t0, 3), "threads": parts}
    with open(tmp / MARKER, "w") as f:  # written last: its presence means every byte above is on disk
        json.dump(meta, f)
        f.flush()
        os.fsync(f.fileno())
    return meta


def estimate_bytes(spec: CacheSpec, sample: int = 200) -> int:
    """About how many bytes ``spec``'s cache takes: the stored sizes of up to ``sample`` files spread over
    the folder (their headers only), scaled to all of them."""
    from PIL import Image

    files = spec.files
    if not files:
        return 0
    picks = sorted({int(i) for i in np.linspace(0, len(files) - 1, min(sample, len(files)))})
    total = 0
    for i in picks:
        try:
            with Image.open(files[i]) as im:
                h, w = stored_dims(im.size[1], im.size[0], spec.short_side)
        except (OSError, ValueError):
            continue  # the build says which file it cannot decode
        total += h * w * spec.channels
    return int(total / len(picks) * len(files))


def _check_space(spec: CacheSpec, cache_dir: Path) -> int:
    """The estimated size of the cache; a one-line DataError when ``cache_dir``'s disk lacks the room."""
    need = estimate_bytes(spec)
    free = shutil.disk_usage(cache_dir).free
    if need * 1.05 > free:  # a margin for the estimate and the index
        raise DataError(f"preparing {len(spec.files):,} images of {spec.root} needs about {need / 2**30:.1f} GB "
                        f"in {cache_dir}, which has {free / 2**30:.1f} GB free: free some space, set "
                        f"data.cache_dir to a larger disk, or lower data.stored_size")
    return need


def open_cache(spec: CacheSpec, cache_dir: Path, *, workers: int | None = None,
               max_bytes: int | None = None, say: Say | None = None) -> PreparedImages:
    """The cache for ``spec``: opened if published, else built (once, whoever asks first) and published.

    ``say`` gets one line when a build starts, progress lines while it runs, one when it ends, and
    one while this process waits for another that is building the same cache.
    """
    cache_dir = Path(cache_dir).expanduser()
    cache_dir.mkdir(parents=True, exist_ok=True)
    key = spec.key()
    final = cache_dir / key
    try:
        build_lock = _lock(cache_dir / f"{key}.build", fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:  # another process (a DDP rank, a parallel run) is building it: wait for it
        if say is not None:
            say(f"waiting for another process to finish preparing {final}")
        build_lock = _lock(cache_dir / f"{key}.build", fcntl.LOCK_EX)
    lock = None
    try:
        if not is_complete(final):
            for stale in cache_dir.glob(f".tmp-{key}-*"):  # a killed build's leftovers (we hold the lock)
                shutil.rmtree(stale, ignore_errors=True)
            if final.exists():  # never trusted without its marker
                shutil.rmtree(final)
            need = _check_space(spec, cache_dir)
            tmp = cache_dir / f".tmp-{key}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            tmp.mkdir()
            w = workers or available_cores()
            line = (f"preparing {len(spec.files):,} images of {spec.root} into {final} (about {_size(need)}, "
                    f"{w} threads; once per folder)")
            log.info(line)
            if say is not None:
                say(line)
            try:
                meta = _write_cache(spec, tmp, key, w, say)
                os.rename(tmp, final)  # the one step that publishes it
                _fsync_dir(cache_dir)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            if say is not None:
                say(f"prepared {meta['images']:,} images in {meta['build_s']:.1f} s ({_size(_folder_bytes(final))})")
        lock = _lock(cache_dir / f"{key}.lock", fcntl.LOCK_SH)  # in use from here on (blocks only a remover)
        images = PreparedImages(final, lock)
    except BaseException:
        if lock is not None:
            lock.close()
        raise
    finally:
        build_lock.close()
    if max_bytes is not None:
        evict(cache_dir, max_bytes, keep=key)
    return images


# ------------------------------------------------------------------ listing and eviction


@dataclass
class CacheEntry:
    """One published cache in a cache folder."""

    key: str
    path: Path
    images: int
    bytes: int
    last_used: float
    root: str
    short_side: int


def list_caches(cache_dir: Path) -> list[CacheEntry]:
    """Published caches in ``cache_dir``, least recently used first."""
    out = []
    cache_dir = Path(cache_dir).expanduser()
    if not cache_dir.is_dir():
        return out
    for folder in cache_dir.iterdir():
        if folder.name.startswith(".") or not folder.is_dir() or not is_complete(folder):
            continue
        try:
            meta = json.loads((folder / MARKER).read_text())
            used = (folder / LAST_USED).stat().st_mtime if (folder / LAST_USED).exists() else 0.0
        except (OSError, ValueError):
            continue
        out.append(CacheEntry(folder.name, folder, int(meta.get("images", 0)), _folder_bytes(folder), used,
                              str(meta.get("root", "")), int(meta.get("short_side", 0))))
    return sorted(out, key=lambda e: e.last_used)


def remove_cache(cache_dir: Path, key: str) -> bool:
    """Delete one cache unless a process is using or building it; True when it was removed."""
    cache_dir = Path(cache_dir).expanduser()
    handles = [open(cache_dir / f"{key}.{kind}", "a+") for kind in ("build", "lock")]  # noqa: SIM115
    try:
        try:
            for fh in handles:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        folder = cache_dir / key
        if folder.exists():
            # unpublish first (one rename), then delete: a crash mid-delete leaves only a .tmp folder
            trash = cache_dir / f".tmp-{key}-rm-{uuid.uuid4().hex[:8]}"
            os.rename(folder, trash)
            shutil.rmtree(trash, ignore_errors=True)
        return True  # the lock files stay: a waiting process may hold them open
    finally:
        for fh in handles:
            fh.close()


def evict(cache_dir: Path, max_bytes: int, keep: str | None = None) -> list[str]:
    """Remove least recently used caches (never ``keep``, never one in use) until the total fits."""
    entries = list_caches(cache_dir)
    total = sum(e.bytes for e in entries)
    removed = []
    for e in entries:
        if total <= max_bytes:
            break
        if e.key == keep:
            continue
        if remove_cache(cache_dir, e.key):
            total -= e.bytes
            removed.append(e.key)
            log.info("evicted prepared cache %s (%.1f MB)", e.key, e.bytes / 2**20)
    return removed
