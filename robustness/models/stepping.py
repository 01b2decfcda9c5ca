"""Layer-by-layer inference of a :class:`~robustness.models.pabee.PabeeModel`: the backbone stepped one layer at
a time, for true early exit (:meth:`LayerStepping.early_exit`, which drops exited examples from the working
batch), for the attack's lazy layer cache (:meth:`LayerStepping.embed` and :meth:`LayerStepping.layer_step`,
see :mod:`robustness.attack.encoding`) and for the PABEE reference code's batch-coupled exit, kept for
benchmarks (:meth:`LayerStepping.reference_batch_early_exit`). Each agrees exactly with the all-layer pass
(:meth:`~robustness.models.pabee.PabeeModel.all_layer_logits`; tests check it).

:class:`LayerStepping` is a mixin of :class:`~robustness.models.pabee.PabeeModel`: it uses the model's backbone
adapter (``_adapter``), its classifiers (``_classify``), its input checks (``_backbone_kwargs``) and its eval/no-grad
context (``_inference``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from robustness.models.exits import Setting, _check_patience, exit_step, parse_setting

__all__ = ["EarlyExitOutput", "LayerStepping"]


@dataclass
class EarlyExitOutput:
    """What :meth:`LayerStepping.early_exit` and :meth:`LayerStepping.reference_batch_early_exit` return."""

    exit_layer: torch.Tensor  # [B] long, 1..L
    logits: torch.Tensor  # [B, C], the exit layer's logits
    layer_preds: torch.Tensor  # [B, L] long, argmax of each computed internal classifier, -1 where not computed
    layers_computed: int  # Σ over examples of transformer layers actually run


class LayerStepping:
    """The layer-by-layer methods of :class:`~robustness.models.pabee.PabeeModel`."""

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
              token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """The backbone's embedding output ``[B, T, D]`` (the input of layer 1), without grad."""
        kwargs = self._backbone_kwargs(input_ids, attention_mask, token_type_ids)
        with self._inference():
            return self._adapter.embed(input_ids, kwargs.get("token_type_ids"))

    def layer_step(self, i: int, hidden: torch.Tensor, attention_mask: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """Layer ``i + 1`` (0-based ``i``) on ``hidden`` ``[B, T, D]`` and its classifier:
        ``(hidden after the layer, logits [B, C])``, without grad. PABEE heads only. Stepping from
        :meth:`embed` through every layer gives :meth:`all_layer_logits` (a test checks it)."""
        if self.head != "pabee":
            raise ValueError("layer_step needs a PABEE head (one classifier per layer)")
        with self._inference():
            hidden = self._adapter.layer(i, hidden, self._adapter.extended_mask(attention_mask, hidden.dtype))
            return hidden, self._classify(i, hidden, attention_mask)

    def early_exit(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None,
        token_type_ids: torch.Tensor | None = None,
        setting: Setting | int | str | None = None,
    ) -> EarlyExitOutput:
        """True early exit at an exit ``setting`` (any policy; an int is a patience, None full depth): runs
        layer i only for the examples still in the working batch. After each layer the exited examples are
        removed (hidden states and mask), and trailing columns that are padding for every remaining example
        are cut. Same exits and logits as the all-layer path."""
        setting = parse_setting(setting)
        kwargs = self._backbone_kwargs(input_ids, attention_mask, token_type_ids)
        mask = kwargs["attention_mask"]
        batch, num_layers, device = input_ids.shape[0], self.num_layers, input_ids.device
        exit_layer = torch.full((batch,), num_layers, dtype=torch.long, device=device)
        layer_preds = torch.full((batch, num_layers), -1, dtype=torch.long, device=device)
        if self.head == "full":
            logits = self.all_layer_logits(input_ids, attention_mask, token_type_ids)[-1]
            layer_preds[:, -1] = logits.argmax(dim=-1)
            return EarlyExitOutput(exit_layer, logits, layer_preds, batch * num_layers)
        # Host-side bookkeeping (which examples are left, how many columns they need) is computed from one copy of
        # the mask made per batch, so that a layer's only host round trip is its exit decision (``done``).
        columns = torch.arange(1, mask.shape[1] + 1)
        width = (mask.cpu().ne(0) * columns).max(dim=1).values  # [B] last real column (1-based), 0 if none
        with self._inference():
            hidden = self._adapter.embed(input_ids, kwargs.get("token_type_ids"))
            out_logits = torch.empty(batch, self.num_labels, dtype=hidden.dtype, device=device)
            active_host = torch.arange(batch)
            active = active_host.to(device)
            counter = torch.zeros(batch, dtype=torch.long, device=device)
            prev_pred = torch.full((batch,), -1, dtype=torch.long, device=device)
            layers_computed = 0
            for i in range(num_layers):
                keep_cols = max(int(width[active_host].max()), 1)
                hidden, mask = hidden[:, :keep_cols], mask[:, :keep_cols]
                hidden = self._adapter.layer(i, hidden, self._adapter.extended_mask(mask, hidden.dtype))
                layers_computed += int(active_host.numel())
                logits = self._classify(i, hidden, mask)
                done, pred, counter = exit_step(setting, i + 1, num_layers, logits, prev_pred, counter)
                layer_preds[active, i] = pred
                done_host = done.cpu()  # the exit decision: this layer's one device -> host copy
                if not bool(done_host.any()):
                    prev_pred = pred
                    continue
                fired = done_host.nonzero().flatten().to(device)
                exit_layer[active[fired]] = i + 1
                out_logits[active[fired]] = logits[fired]
                live_host = (~done_host).nonzero().flatten()
                if live_host.numel() == 0:
                    break
                live = live_host.to(device)
                active_host, active, hidden, mask = active_host[live_host], active[live], hidden[live], mask[live]
                counter, prev_pred = counter[live], pred[live]
        return EarlyExitOutput(exit_layer, out_logits, layer_preds, layers_computed)

    def reference_batch_early_exit(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None,
        token_type_ids: torch.Tensor | None = None,
        patience: int | None = None,
    ) -> EarlyExitOutput:
        """The PABEE reference code's batch-coupled early exit, for benchmarks only: one counter for the
        whole batch (incremented when *all* predictions stay the same, else reset); the whole batch stops
        at the first layer where it reaches ``patience``. Equals
        :func:`robustness.models.exits.reference_batch_patience_exit` on the all-layer logits."""
        _check_patience(patience)
        if self.head != "pabee":
            raise ValueError("reference_batch_early_exit needs a PABEE head")
        kwargs = self._backbone_kwargs(input_ids, attention_mask, token_type_ids)
        mask = kwargs["attention_mask"]
        batch, num_layers = input_ids.shape[0], self.num_layers
        layer_preds = torch.full((batch, num_layers), -1, dtype=torch.long, device=input_ids.device)
        with self._inference():
            hidden = self._adapter.embed(input_ids, kwargs.get("token_type_ids"))
            extended = self._adapter.extended_mask(mask, hidden.dtype)
            counter, prev_pred = 0, None
            for i in range(num_layers):
                hidden = self._adapter.layer(i, hidden, extended)
                logits = self._classify(i, hidden, mask)
                pred = logits.argmax(dim=-1)
                layer_preds[:, i] = pred
                if prev_pred is not None:
                    counter = counter + 1 if bool((pred == prev_pred).all()) else 0
                prev_pred = pred
                if counter == patience:
                    break
        exit_layer = torch.full((batch,), i + 1, dtype=torch.long, device=input_ids.device)
        return EarlyExitOutput(exit_layer, logits, layer_preds, batch * (i + 1))
