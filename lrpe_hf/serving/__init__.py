"""An OpenAI-compatible server for causal LMs on Transformers' own ``transformers serve``: ``/v1/completions`` and
``/v1/chat/completions`` (streaming or not), ``/v1/models``, ``/health``.

:func:`serve` pins the server to one checkpoint and checks it before anything starts; :class:`RequestChecks` answers
the requests the serving code would turn into a 500 (or an error inside a 200 stream) with a 400 before they reach
generation. Everything that touches Transformers' serving internals is in :mod:`lrpe_hf.serving.hook`.
"""

from __future__ import annotations

import importlib.util
import json
import os

from . import hook
from .hook import ServingInternalsChanged

SERVE_EXTRA = "lrpe_hf[serve]"
# What `transformers serve` imports (transformers' `is_serve_available` and its `serving` extra).
SERVING_MODULES = ("fastapi", "uvicorn", "openai", "pydantic", "starlette")
# The `transformers serve` options passed through. Left out: continuous batching (its paged KV cache has no place
# for linear attention's recurrent state), bitsandbytes quantization and the idle-unload timeout (the model is pinned).
SERVE_OPTIONS = (
    "device", "dtype", "trust_remote_code", "attn_implementation", "compile", "chat_template_kwargs", "enable_cors",
    "log_level", "default_seed",
)


class ServeError(ValueError):
    """A problem the user can fix: the model, an option, or a missing dependency."""


def serve(model: str, host: str = "127.0.0.1", port: int = 8000, **options) -> None:
    """Serve the causal LM ``model`` (a folder or a Hub id; also its name in requests) until stopped.

    ``options`` (:data:`SERVE_OPTIONS`) go to ``transformers serve`` (``transformers.cli.serve.Serve``) as they are;
    ``chat_template_kwargs`` is a JSON object as a string. Raises :class:`ServeError` for a missing dependency,
    folder or tokenizer, or a checkpoint that is not a causal LM; :class:`ServingInternalsChanged` if the installed
    Transformers' serving code has moved.
    """
    unknown = sorted(set(options) - set(SERVE_OPTIONS))
    if unknown:
        raise TypeError(f"serve() got unknown option(s) {unknown}; choose from {SERVE_OPTIONS}")
    missing = [name for name in SERVING_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise ServeError(f"missing serving dependencies ({', '.join(missing)}): pip install '{SERVE_EXTRA}'")
    config = _load_config(model)
    try:
        hook.expose_architecture(config)
    except ValueError as err:
        raise ServeError(f"{model}: {err}") from err
    try:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(model, trust_remote_code=options.get("trust_remote_code", False))
    except (OSError, ValueError) as err:
        raise ServeError(f"cannot load the tokenizer of {model}: {_first_line(err)}") from err
    try:
        template_kwargs = json.loads(options.get("chat_template_kwargs") or "{}")
    except ValueError:
        template_kwargs = None
    if not isinstance(template_kwargs, dict):
        raise ServeError(f"chat_template_kwargs must be a JSON object, got {options['chat_template_kwargs']!r}")

    def wrap(app):
        return RequestChecks(app, tokenizer, context_limit(config), template_kwargs)

    hook.run(config, model, dict(options, host=host, port=port), wrap)


def _load_config(model: str):
    from transformers import AutoConfig

    if not os.path.isdir(model) and (os.path.exists(model) or model.startswith((os.sep, ".", "~"))):
        raise ServeError(f"no model folder at {model}")
    if os.path.isdir(model) and not os.path.isfile(os.path.join(model, "config.json")):
        raise ServeError(f"{model} has no config.json: not a saved model folder")
    try:
        # Without remote code: the serving code finds classes only among Transformers' and registered ones.
        return AutoConfig.from_pretrained(model)
    except (OSError, ValueError) as err:
        where = "folder" if os.path.isdir(model) else "Hub model (not a local folder either)"
        raise ServeError(f"cannot load the config of {where} {model}: {_first_line(err)}") from err


def _first_line(err: Exception) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def context_limit(config) -> int | None:
    """The most positions (prompt + completion) the model can read, or ``None`` for no limit.

    LRPE models encode positions relatively inside linear attention and run at any length (arXiv 2307.09270,
    section 3); only a learned absolute position table bounds them. Other architectures are held to their
    ``max_position_embeddings``, as OpenAI-compatible servers usually do.
    """
    if config.model_type == "lrpe":
        return config.max_position_embeddings if config.absolute_position_embedding == "learned" else None
    return getattr(config, "max_position_embeddings", None)


class BadRequest(ValueError):
    pass


class RequestChecks:
    """ASGI wrapper around Transformers' app for ``POST /v1/completions`` and ``/v1/chat/completions``.

    In Transformers 5.24 a negative ``max_tokens`` or temperature, a chat request to a tokenizer without a chat
    template, or a prompt beyond a model's position limit fail inside generation: a 500, or an error event in a 200
    stream. These are answered with a 400 here. With a position limit, a request without ``max_tokens`` gets the room
    the prompt leaves (the serving code would ask for 1024 tokens and overrun the limit).
    """

    ROUTES = {"/v1/completions": "completion", "/v1/chat/completions": "chat"}

    def __init__(self, app, tokenizer, limit: int | None, chat_template_kwargs: dict | None = None):
        self.app, self.tokenizer, self.limit = app, tokenizer, limit
        self.chat_template_kwargs = chat_template_kwargs or {}

    async def __call__(self, scope, receive, send):
        kind = self.ROUTES.get(scope.get("path")) if scope["type"] == "http" and scope["method"] == "POST" else None
        if kind is None:
            return await self.app(scope, receive, send)
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body, more = body + message.get("body", b""), message.get("more_body", False)
        try:
            request = json.loads(body)
        except ValueError:
            request = None  # malformed JSON: Transformers' own answer (422)
        if isinstance(request, dict):
            try:
                if self.check(kind, request):
                    body = json.dumps(request).encode()
                    headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"content-length"]
                    scope = {**scope, "headers": headers + [(b"content-length", str(len(body)).encode())]}
            except BadRequest as err:
                return await _send_error(send, str(err))
        replayed = False

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()  # after the body: the client's disconnect, for streaming responses
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, _openai_errors(send))

    def check(self, kind: str, request: dict) -> bool:
        """Raise :class:`BadRequest` for a request generation would fail on; return whether ``request`` was changed."""
        for field in ("max_tokens", "max_completion_tokens"):
            value = request.get(field)
            if value is not None and (type(value) is not int or value < 1):
                raise BadRequest(f"{field} must be a positive integer, got {value!r}")
        _check_number(request, "temperature", lambda t: t >= 0, "a number >= 0")
        _check_number(request, "top_p", lambda p: 0 < p <= 1, "a number in (0, 1]")
        if kind == "chat":
            if not getattr(self.tokenizer, "chat_template", None):
                raise BadRequest("this model's tokenizer has no chat template: use /v1/completions")
            if not isinstance(request.get("messages"), list) or not request["messages"]:
                raise BadRequest("messages must be a non-empty list")
            prompt_length = self._chat_length(request)
        else:
            if not isinstance(request.get("prompt", ""), str):
                return False  # a prompt that is not a string gets Transformers' own 400
            prompt_length = len(self.tokenizer(request.get("prompt", ""))["input_ids"])
        if prompt_length == 0:
            raise BadRequest("the prompt is missing or empty: there is no token to continue")
        if self.limit is None:
            return False
        room = self.limit - prompt_length
        if room < 1:
            raise BadRequest(
                f"the prompt is {prompt_length} tokens long; this model reads at most {self.limit} positions, "
                "prompt and completion together"
            )
        asked = request.get("max_completion_tokens") or request.get("max_tokens")
        if asked is None:
            if "generation_config" in request:
                return False  # the caller's own generation config decides
            request["max_tokens"] = room
            return True
        if asked > room:
            raise BadRequest(
                f"the prompt ({prompt_length} tokens) and {asked} completion tokens exceed the {self.limit} positions "
                f"this model reads: ask for at most {room}"
            )
        return False

    def _chat_length(self, request: dict) -> int:
        kwargs = {**self.chat_template_kwargs, **(request.get("chat_template_kwargs") or {})}
        try:
            ids = self.tokenizer.apply_chat_template(
                hook.chat_messages(request["messages"]), add_generation_prompt=True, tools=request.get("tools"),
                tokenize=True, return_dict=True, **kwargs,
            )["input_ids"]
        except Exception as err:  # the serving code would hit the same error, as a 500
            why = f"a message lacks {err}" if isinstance(err, KeyError) else _first_line(err)
            raise BadRequest(f"cannot apply the chat template to these messages: {why}") from err
        return len(ids)


def _check_number(request: dict, field: str, valid, expected: str) -> None:
    value = request.get(field)
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not valid(value)):
        raise BadRequest(f"{field} must be {expected}, got {value!r}")


async def _send_error(send, message: str, status: int = 400, headers=()) -> None:
    payload = json.dumps({"error": {"message": message, "type": "invalid_request_error", "code": None}}).encode()
    headers = [(k, v) for k, v in headers if k.lower() not in (b"content-type", b"content-length")]
    headers += [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


def _openai_errors(send):
    """``send`` that rewrites Transformers' 4xx bodies, FastAPI's ``{"detail": ...}``, into OpenAI's
    ``{"error": {"message": ...}}``: OpenAI clients put only the latter in their exception's text."""
    held = {}

    async def send_rewritten(message):
        if message["type"] == "http.response.start" and 400 <= message["status"] < 500:
            held.update(start=message, body=b"")
            return
        if "start" not in held:
            return await send(message)
        held["body"] += message.get("body", b"")
        if message.get("more_body"):
            return
        try:
            detail = json.loads(held["body"])["detail"]
        except (ValueError, KeyError, TypeError):
            await send(held["start"])
            return await send({"type": "http.response.body", "body": held["body"]})
        detail = detail if isinstance(detail, str) else json.dumps(detail)
        await _send_error(send, detail, held["start"]["status"], held["start"].get("headers", ()))

    return send_rewritten


__all__ = [
    "SERVE_EXTRA", "SERVE_OPTIONS", "BadRequest", "RequestChecks", "ServeError", "ServingInternalsChanged",
    "context_limit", "serve",
]
