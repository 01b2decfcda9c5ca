"""Exit settings: how a model decides where to exit, as a value (no torch here, so specs stay light).

A :class:`Setting` is a policy and its parameter -- ``patience:P`` (PABEE), ``entropy:T`` (DeeBERT),
``maxprob:T`` (max softmax probability) or ``full`` (every example runs all L layers). The rules themselves
live in :mod:`robustness.models.exits`. :func:`parse_setting` accepts the canonical labels and, as before
settings existed, plain integers (patience) and ``"full"``/``None`` (full depth).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

POLICIES = ("patience", "entropy", "maxprob", "full")
THRESHOLD_POLICIES = ("entropy", "maxprob")
#: Where ``robustness evaluate --match-*`` records calibrated thresholds, in the model directory.
CALIBRATION_FILE = "calibration.json"
#: A suite's name for the setting its ``[verdict] select`` rule pre-registers, known once bench has recorded the
#: rule's choice (``settings = ["selected"]``, ``calibrated = ["entropy@selected"]``).
SELECTED = "selected"

__all__ = ["CALIBRATION_FILE", "POLICIES", "SELECTED", "THRESHOLD_POLICIES", "Setting", "calibrated_setting",
           "check_setting_reachable", "parse_setting", "read_calibration", "resolve_calibrated"]


def _check_patience(patience: int | None) -> None:
    if patience is not None and (isinstance(patience, bool) or not isinstance(patience, int) or patience < 1):
        raise ValueError(f"patience must be an integer >= 1 or None (full depth), got {patience!r}")



@dataclass(frozen=True)
class Setting:
    """How a model exits: ``policy`` in :data:`POLICIES` and its ``value`` (patience: int >= 1; entropy:
    threshold >= 0 in nats; maxprob: threshold in [0, 1]; full: None). Build with :func:`parse_setting`."""

    policy: str
    value: int | float | None = None

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"exit policy must be one of {', '.join(POLICIES)}, got {self.policy!r}")
        if self.policy == "full":
            if self.value is not None:
                raise ValueError(f"setting 'full' takes no value, got {self.value!r}")
        elif self.policy == "patience":
            _check_patience(self.value)
            if self.value is None:
                raise ValueError("setting 'patience' needs a value (use 'full' for full depth)")
        else:
            if isinstance(self.value, bool) or not isinstance(self.value, int | float) or math.isnan(self.value):
                raise ValueError(f"{self.policy} threshold must be a number, got {self.value!r}")
            low_ok = self.value >= 0
            if not low_ok or (self.policy == "maxprob" and self.value > 1):
                bounds = ">= 0" if self.policy == "entropy" else "in [0, 1]"
                raise ValueError(f"{self.policy} threshold must be {bounds}, got {self.value!r}")
            object.__setattr__(self, "value", float(self.value))

    @property
    def label(self) -> str:
        """Canonical text: ``patience:2``, ``entropy:0.35``, ``maxprob:0.9``, ``full``."""
        return "full" if self.policy == "full" else f"{self.policy}:{self.value}"

    @property
    def slug(self) -> str:
        """Short form for run ids: ``p2``, ``pfull``, ``ent0.35``, ``mp0.9`` (``p``/``pfull`` as before)."""
        prefix = {"patience": "p", "entropy": "ent", "maxprob": "mp"}
        return "pfull" if self.policy == "full" else f"{prefix[self.policy]}{self.value}"

    @property
    def patience(self) -> int | None:
        """The patience of a patience/full setting (None = full depth); ValueError for threshold policies."""
        if self.policy not in ("patience", "full"):
            raise ValueError(f"setting {self.label} is not a patience setting")
        return self.value  # type: ignore[return-value]

    def sort_key(self) -> tuple[int, float]:
        """Order: patience ascending, entropy descending (stricter later), maxprob ascending, full last."""
        rank = POLICIES.index(self.policy)
        value = 0.0 if self.value is None else float(self.value)
        return (rank, -value if self.policy == "entropy" else value)

    def __str__(self) -> str:
        return self.label


def parse_setting(value: Any) -> Setting:
    """A :class:`Setting` from a Setting, ``None``/``"full"`` (full depth), a positive int or its text
    (patience), or ``"policy:value"`` (``patience:P``, ``entropy:T``, ``maxprob:T``, ``patience:full``)."""
    if isinstance(value, Setting):
        return value
    if value is None or value == "full":
        return Setting("full")
    if isinstance(value, bool):
        raise ValueError(f"a setting must be 'full', an integer patience or 'policy:value', got {value!r}")
    if isinstance(value, int):
        return Setting("patience", value)
    text = str(value).strip()
    policy, sep, raw = text.partition(":")
    if not sep:
        policy, raw = "patience", text
    policy = {"p": "patience", "max_prob": "maxprob", "max-prob": "maxprob"}.get(policy, policy)
    if policy not in POLICIES or policy == "full" or not raw:
        raise ValueError(f"a setting must be 'full', an integer patience or one of patience:P, entropy:T, "
                         f"maxprob:T; got {value!r}")
    if policy == "patience":
        if raw == "full":
            return Setting("full")
        if not raw.isdigit():
            raise ValueError(f"patience must be a positive integer or 'full', got {value!r}")
        return Setting("patience", int(raw))
    try:
        number = float(raw)
    except ValueError:
        raise ValueError(f"{policy} threshold must be a number, got {value!r}") from None
    return Setting(policy, number)


def calibrated_setting(reference: str) -> tuple[str, str]:
    """``"entropy@patience:2"`` / ``"maxprob@1.86"`` -> ``(policy, target)``: a threshold policy calibrated to the
    clean layer speed-up of a setting (label) or to a speed-up (a number); the target :data:`SELECTED` (the
    setting a suite's select rule pre-registers) stays as it is. ValueError for anything else."""
    policy, sep, target = str(reference).partition("@")
    if not sep or policy not in THRESHOLD_POLICIES or not target:
        raise ValueError(f"a calibrated setting looks like entropy@patience:2 or maxprob@1.86, got {reference!r}")
    if target == SELECTED:
        return policy, target
    try:
        return policy, str(float(target))
    except ValueError:
        return policy, parse_setting(target).label


def read_calibration(model_dir: str | Path) -> dict[str, dict[str, Any]]:
    """``<model_dir>/calibration.json`` (reference -> entry), empty when there is none."""
    path = Path(model_dir) / CALIBRATION_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise ValueError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ValueError(f"{path} must map references (entropy@patience:2) to entries; delete it and calibrate again")
    return data


def resolve_calibrated(reference: str, model_dir: str | Path) -> Setting:
    """The setting a calibration reference (``entropy@patience:2``) stands for in ``model_dir``'s calibration."""
    policy, target = calibrated_setting(reference)
    if target == SELECTED:
        raise ValueError(f"{reference} is calibrated to the setting a select rule pre-registers, known only once "
                         "bench has recorded the rule's choice")
    key = f"{policy}@{target}"
    entry = read_calibration(model_dir).get(key)
    if entry is None:
        flag = f"--match-speedup {target}" if target[0].isdigit() else f"--match-patience {target}"
        raise ValueError(f"{Path(model_dir) / CALIBRATION_FILE} has no {key}; run robustness evaluate --model "
                         f"{model_dir} {flag} first")
    bad = [k for k, v in entry.items() if isinstance(v, float) and not math.isfinite(v)]
    try:
        if bad:
            raise ValueError(f"its {bad[0]} is {entry[bad[0]]}")
        setting = parse_setting(entry.get("setting"))
        if setting.policy != policy:
            raise ValueError(f"it holds a {setting.policy} setting")
    except ValueError as exc:
        raise ValueError(f"{Path(model_dir) / CALIBRATION_FILE}: entry {key} is unusable ({exc}); delete the entry "
                         "and calibrate again") from None
    return setting


def check_setting_reachable(setting: Setting, num_layers: int, where: str) -> None:
    """``ValueError`` for a patience the model cannot reach: patience >= L never exits early (it would be
    full depth under another name), so it is refused rather than labelled ``patience:P``."""
    if setting.policy == "patience" and setting.value is not None and setting.value >= num_layers:
        raise ValueError(f"{where}: setting {setting.label} needs patience < the model's {num_layers} layers; "
                         "use 'full' for full depth")
