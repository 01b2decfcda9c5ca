"""Defended models in a suite: a model whose ``[models.train]`` table names ``adversarial = "RECIPE"`` and
``init = "<another model id>"`` is that model adversarially fine-tuned (:mod:`robustness.attack.adversarial_training`)
once the init model exists. Its other training keys default to the init model's (the same data, hyperparameters
and step budget); its head is the init model's. Bench trains init models first (:func:`training_order`)."""

from __future__ import annotations

from typing import Any

__all__ = ["ADVERSARIAL_KEYS", "adversarial_options", "check_defended", "split_train", "training_order"]

#: ``[models.train]`` keys of an adversarial fine-tuning (as the ``train`` flags: --adversarial, ...)
ADVERSARIAL_KEYS = ("adversarial", "adversarial_goal", "adv_ratio", "adv_setting", "adv_query_budget", "init")


def split_train(train: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(training options, adversarial keys)`` of a model's ``[models.train]`` table."""
    return ({k: v for k, v in train.items() if k not in ADVERSARIAL_KEYS},
            {k: v for k, v in train.items() if k in ADVERSARIAL_KEYS})


def check_defended(models: Any, where: str) -> None:
    """Each defended model names both ``adversarial`` and ``init``; its init is another model of the suite, of the
    same head, and the inits form no cycle. ``ValueError`` naming ``where`` and the model otherwise."""
    by_id = {m.id: m for m in models}
    for model in models:
        _, adv = split_train(model.train)
        if not adv:
            continue
        if "adversarial" not in adv or "init" not in adv:
            raise ValueError(f"{where}: model {model.id!r}: adversarial training needs both 'adversarial' (a recipe) "
                             "and 'init' (the id of the clean model it starts from) in [models.train]")
        if model.path is not None:
            raise ValueError(f"{where}: model {model.id!r} has a path; a trained model takes no adversarial keys")
        init = adv["init"]
        if init not in by_id or init == model.id:
            raise ValueError(f"{where}: model {model.id!r}: init {init!r} is not another model of the suite "
                             f"({', '.join(m for m in by_id if m != model.id)})")
        if by_id[init].head != model.head:
            raise ValueError(f"{where}: model {model.id!r} is {model.head} but its init {init!r} is "
                             f"{by_id[init].head}; give it the init's head")
        others = set(split_train(model.train)[0]) & {"head", "pooling", "backbone"}
        if others:
            raise ValueError(f"{where}: model {model.id!r}: {sorted(others)} come from its init {init!r}; drop them")
    training_order(models, where)


def training_order(models: Any, where: str = "suite") -> list[Any]:
    """The models in an order where every init model comes before the models fine-tuned from it (otherwise the
    suite's order); ``ValueError`` for a cycle of inits."""
    by_id = {m.id: m for m in models}
    order: list[Any] = []
    state: dict[str, str] = {}

    def visit(model: Any, chain: tuple[str, ...]) -> None:
        if state.get(model.id) == "done":
            return
        if model.id in chain:
            cycle = " -> ".join([*chain, model.id])
            raise ValueError(f"{where}: models {cycle} are each other's init; break the cycle")
        init = split_train(model.train)[1].get("init")
        if init in by_id:
            visit(by_id[init], (*chain, model.id))
        state[model.id] = "done"
        order.append(model)

    for model in models:
        visit(model, ())
    return order


def adversarial_options(model: Any, init_dir: str) -> Any:
    """The :class:`~robustness.attack.adversarial_options.AdversarialOptions` of a defended model whose init model
    lives in ``init_dir``."""
    from robustness.attack.adversarial_options import AdversarialOptions

    adv = split_train(model.train)[1]
    try:
        return AdversarialOptions(recipe=adv["adversarial"], init=init_dir,
                                  goal=adv.get("adversarial_goal", "accuracy"), ratio=adv.get("adv_ratio", 0.2),
                                  setting=adv.get("adv_setting"),
                                  query_budget=adv.get("adv_query_budget"))
    except TypeError as exc:
        raise ValueError(f"model {model.id!r}: invalid adversarial key: {exc}") from None
