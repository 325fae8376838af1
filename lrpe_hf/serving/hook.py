"""The one place that touches the internals of ``transformers serve`` (written against Transformers 5.24).

Two things, each checked before the server starts so that a Transformers release that moves them fails loudly,
naming its version, instead of serving without them (plus :func:`_list_pinned_model`, for 5.23's ``/v1/models``):

1. ``ModelManager._load_model`` finds a checkpoint's class with ``getattr(transformers, config.architectures[0])``,
   which only knows Transformers' built-in classes. :func:`expose_architecture` puts the class the Auto mapping
   resolves for the checkpoint under that name (nothing else is added), so any architecture registered with
   ``AutoModelForCausalLM`` -- ours included -- loads exactly like a built-in one.
2. ``Serve.__init__`` imports ``build_server`` from ``transformers.cli.serving.server`` at call time; :func:`run`
   swaps it for the length of its ``Serve(...)`` call so the caller can wrap the ASGI app it returns (our request
   checks) -- the routes and handlers stay Transformers' own.
"""

from __future__ import annotations

import functools
import inspect
import os

import transformers


class ServingInternalsChanged(RuntimeError):
    """Transformers' serving code no longer looks the way this hook was written against."""


def _changed(what: str) -> ServingInternalsChanged:
    return ServingInternalsChanged(
        f"transformers {transformers.__version__}: {what}; `lrpe-hf serve` was written against the serving code of "
        "Transformers 5.24 (transformers/cli/serve.py, cli/serving/) and needs updating for this release"
    )


def serve_class(options: dict):
    """``transformers.cli.serve.Serve``, after checking that it still takes ``options`` and builds its app with
    ``serving.server.build_server`` (the name :func:`run` replaces)."""
    try:
        from transformers.cli.serve import Serve
        from transformers.cli.serving import server
    except ImportError as err:
        raise _changed(f"cannot import its serving code ({err})") from err
    accepted = inspect.signature(Serve).parameters
    unknown = sorted(name for name in options if name not in accepted)
    if unknown:
        raise _changed(f"`Serve` no longer takes {', '.join(unknown)}")
    # `from .serving.server import build_server` inside `Serve.__init__` puts the name in its code's names.
    if "build_server" not in Serve.__init__.__code__.co_names or not callable(getattr(server, "build_server", None)):
        raise _changed("`Serve` no longer builds its app with `cli.serving.server.build_server`")
    if next(iter(inspect.signature(server.build_server).parameters), None) != "model_manager":
        raise _changed("`build_server` no longer takes the model manager first")
    try:
        chat_messages([])
    except (ImportError, AttributeError) as err:
        raise _changed(f"its chat message conversion moved ({err})") from err
    return Serve


def chat_messages(messages: list) -> list:
    """OpenAI chat messages as the serving code hands them to a text model's chat template (its own conversion, so
    that a prompt is measured exactly as it will be generated from)."""
    from transformers.cli.serving.utils import BaseHandler, Modality

    return BaseHandler.get_processor_inputs_from_messages(messages, Modality.LLM)


def expose_architecture(config) -> type:
    """Make ``getattr(transformers, config.architectures[0])`` return the causal-LM class the Auto mapping gives
    ``config``; return that class. Raises ``ValueError`` if the checkpoint is not a causal LM the Auto classes know."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

    names = getattr(config, "architectures", None) or []
    if type(config) not in MODEL_FOR_CAUSAL_LM_MAPPING or not names:
        raise ValueError(
            f"model_type {config.model_type!r} (architectures {names}) is not a causal language model registered "
            "with AutoModelForCausalLM; `serve` needs one"
        )
    model_class = MODEL_FOR_CAUSAL_LM_MAPPING[type(config)]
    if names[0] != model_class.__name__:
        raise ValueError(
            f"the checkpoint's architecture is {names[0]}, not the causal LM {model_class.__name__}; `serve` needs "
            "a causal language model"
        )
    present = getattr(transformers, names[0], None)
    if present is None:
        setattr(transformers, names[0], model_class)
    elif present is not model_class:
        raise _changed(f"`transformers.{names[0]}` is another class than the one registered for {config.model_type!r}")
    return model_class


def run(config, model_id: str, options: dict, wrap) -> None:
    """Run ``transformers serve`` pinned to ``model_id`` (its loaded ``config``) with ``options``, its app wrapped by
    ``wrap(app) -> app``; returns when the server stops."""
    serve = serve_class(options)
    model_class = expose_architecture(config)
    from transformers.cli.serving import server

    original = server.build_server

    @functools.wraps(original)
    def build_server(model_manager, *args, **kwargs):
        model, _ = model_manager.load_model_and_processor(model_manager.process_model_name(model_id))  # cached
        if not isinstance(model, model_class):
            raise _changed(f"the serving code loaded {type(model).__name__} instead of {model_class.__name__}")
        _list_pinned_model(model_manager, model_id)
        return wrap(original(model_manager, *args, **kwargs))

    server.build_server = build_server  # read by `Serve.__init__` at call time (checked in serve_class)
    try:
        serve(force_model=model_id, **options)  # loads the model, builds the app, runs uvicorn until stopped
    except AttributeError as err:
        if config.architectures[0] in str(err):  # the class lookup of point 1 moved
            raise _changed(f"the serving code no longer finds model classes as `transformers.<name>` ({err})") from err
        raise
    finally:
        server.build_server = original


def _list_pinned_model(model_manager, model_id: str) -> None:
    """Transformers 5.24 lists a pinned model in ``/v1/models`` (``ModelManager.list_models``); 5.23, the oldest
    release this package supports, lists only the Hub cache there (``get_gen_models``: a 500 without a cache, and never
    a local folder). Give 5.23 the answer of 5.24."""
    if hasattr(model_manager, "list_models"):
        return
    if not hasattr(model_manager, "get_gen_models"):
        raise _changed("`ModelManager` has neither `list_models` nor `get_gen_models` for /v1/models")
    owner = "local" if os.path.exists(model_id) else model_id.split("/")[0] if "/" in model_id else ""
    entry = {"id": model_id, "object": "model", "created": 0, "owned_by": owner}
    model_manager.get_gen_models = lambda *args, **kwargs: [entry]

