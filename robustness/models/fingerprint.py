"""Model identity: a fingerprint of a saved model's weights and config.

``fingerprint = sha256(sha256(every *.safetensors file, by name) + sha256(canonical config.json))[:16]``.
It is written as ``fingerprint.json`` when a model is saved and recorded in the ``spec.json`` of every run
made with the model, so that resuming or reusing a run made with other weights at the same path is refused.
It is always recomputed from the files (a stale ``fingerprint.json`` cannot vouch for new weights); the
config is canonicalised (sorted keys, without ``transformers_version``) so re-serialising it changes nothing.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from robustness.provenance import read_json_object, write_json_atomic

FINGERPRINT_FILE = "fingerprint.json"
CONFIG_FILE = "config.json"
_VOLATILE_CONFIG_KEYS = ("transformers_version", "_name_or_path")


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks (a weights file is never held in memory whole)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _config_sha256(path: Path) -> str:
    config = read_json_object(path)
    canonical = {k: v for k, v in config.items() if k not in _VOLATILE_CONFIG_KEYS}
    return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()


def compute_fingerprint(model_dir: str | Path) -> dict[str, str]:
    """``{"fingerprint", "weights_sha256", "config_sha256"}`` of the model saved in ``model_dir``."""
    model_dir = Path(model_dir)
    config = model_dir / CONFIG_FILE
    weights = sorted(model_dir.glob("*.safetensors"))
    if not config.is_file() or not weights:
        raise ValueError(f"{model_dir} holds no saved model (needs {CONFIG_FILE} and *.safetensors)")
    weights_digest = hashlib.sha256()
    for path in weights:
        weights_digest.update(f"{path.name}\0{file_sha256(path)}\0".encode())
    weights_sha, config_sha = weights_digest.hexdigest(), _config_sha256(config)
    combined = hashlib.sha256(f"{weights_sha}\0{config_sha}".encode()).hexdigest()[:16]
    return {"fingerprint": combined, "weights_sha256": weights_sha, "config_sha256": config_sha}


def model_fingerprint(model_dir: str | Path) -> str:
    """The 16-hex-digit fingerprint of the model in ``model_dir`` (recomputed from its files)."""
    return compute_fingerprint(model_dir)["fingerprint"]


def write_fingerprint(model_dir: str | Path) -> str:
    """Compute the fingerprint of a just-saved model and write it to ``fingerprint.json``; returns it."""
    found = compute_fingerprint(model_dir)
    write_json_atomic(Path(model_dir) / FINGERPRINT_FILE, found)
    return found["fingerprint"]
