"""`lrpe-hf serve`: a real server process (Transformers' own `transformers serve`) on a tiny LRPE checkpoint, talked
to with the official `openai` client. Greedy answers must equal `model.generate` on the same tokens."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

import lrpe_hf  # noqa: F401  (registers the architectures)
from lrpe_hf.cli import main
from lrpe_hf.models.lrpe import LrpeConfig, LrpeForCausalLM, LrpeForMaskedLM

VOCAB = 64
LIMIT = 32  # learned absolute positions: a real length limit
CHAT_TEMPLATE = "{% for m in messages %}{{ m['content'] }} {% endfor %}{% if add_generation_prompt %}w1{% endif %}"


def _tokenizer(chat_template=CHAT_TEMPLATE):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"[PAD]": 0, "[EOS]": 1, **{f"w{i}": i + 2 for i in range(VOCAB - 2)}}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[PAD]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="[PAD]", eos_token="[EOS]")
    tok.chat_template = chat_template
    return tok


def _config(**kw):
    return LrpeConfig.from_preset(
        "lrpe-unitary-householder", size="tiny", vocab_size=VOCAB, pad_token_id=0, eos_token_id=1,
        absolute_position_embedding="learned", max_position_embeddings=LIMIT, tie_word_embeddings=False, **kw,
    )


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = LrpeForCausalLM(_config()).eval()
    with torch.no_grad():  # random, untied weights: varied greedy continuations, not copies of the last token
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0, 0.3)
    path = tmp_path_factory.mktemp("serve") / "tiny-clm"
    model.save_pretrained(path)
    _tokenizer().save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def reference(checkpoint):
    """``complete(ids, n)``: the greedy continuation ``generate`` gives in this process, decoded like the server."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(checkpoint).eval()
    tok = AutoTokenizer.from_pretrained(checkpoint)

    def complete(ids, n):
        out = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                             max_new_tokens=n, do_sample=False)
        return tok.decode(out[0, len(ids):], skip_special_tokens=True)

    complete.tokenizer = tok
    return complete


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _get(url: str):
    with _NO_PROXY.open(url, timeout=10) as r:
        return r.status, json.loads(r.read())


@pytest.fixture(scope="module")
def server(checkpoint, tmp_path_factory):
    for module in ("fastapi", "uvicorn", "openai"):
        pytest.importorskip(module)
    port = _free_port()
    log_path = tmp_path_factory.mktemp("serve-log") / "server.log"
    log = open(log_path, "w")
    cmd = [sys.executable, "-m", "lrpe_hf.cli", "serve", str(checkpoint), "--host", "127.0.0.1", "--port", str(port),
           "--device", "cpu"]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail(f"server exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                if _get(base + "/health")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"server did not answer /health in 90 s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="module")
def client(server):
    import openai

    # No retries: a 5xx must fail the test, not be retried away. No proxy for a local server.
    return openai.OpenAI(base_url=server + "/v1", api_key="x", max_retries=0, timeout=60,
                         http_client=openai.DefaultHttpxClient(trust_env=False))


def _ids(reference, text):
    return reference.tokenizer(text)["input_ids"]


def test_greedy_completion_equals_generate(client, checkpoint, reference):
    out = client.completions.create(model=str(checkpoint), prompt="w4 w5 w6", max_tokens=8, temperature=0)
    assert out.choices[0].text == reference(_ids(reference, "w4 w5 w6"), 8)
    assert out.usage.prompt_tokens == 3


def test_streaming_completion_concatenates_to_the_same_text(client, checkpoint, reference):
    stream = client.completions.create(model=str(checkpoint), prompt="w4 w5 w6", max_tokens=8, temperature=0,
                                       stream=True)
    assert "".join(chunk.choices[0].text for chunk in stream) == reference(_ids(reference, "w4 w5 w6"), 8)


def test_default_length_fits_the_position_limit(client, checkpoint, reference):
    # Transformers would ask for 1024 new tokens; the server gives a request without max_tokens the room left.
    ids = _ids(reference, "w10 w20")
    out = client.completions.create(model=str(checkpoint), prompt="w10 w20", temperature=0)
    assert out.choices[0].text == reference(ids, LIMIT - len(ids))


def test_chat_completion_uses_the_chat_template(client, checkpoint, reference):
    messages = [{"role": "user", "content": "w5 w6"}]
    ids = reference.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                                  return_dict=True)["input_ids"]
    expected = reference(ids, 6)
    out = client.chat.completions.create(model=str(checkpoint), messages=messages, max_tokens=6, temperature=0)
    assert out.choices[0].message.content == expected
    stream = client.chat.completions.create(model=str(checkpoint), messages=messages, max_tokens=6, temperature=0,
                                           stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == expected


def test_models_and_health(client, server, checkpoint):
    assert [m.id for m in client.models.list().data] == [str(checkpoint)]
    assert _get(server + "/health") == (200, {"status": "ok"})


def test_concurrent_requests(client, checkpoint, reference):
    prompts = [f"w{i} w{i + 7}" for i in range(2, 10)]

    def ask(prompt):
        return client.completions.create(model=str(checkpoint), prompt=prompt, max_tokens=6, temperature=0)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(ask, prompts))
    assert [a.choices[0].text for a in answers] == [reference(_ids(reference, p), 6) for p in prompts]


LONG = " ".join(["w3"] * (LIMIT + 8))
BAD_REQUESTS = {
    "unknown model": ("completions", dict(model="no-such-model", prompt="w1", max_tokens=2), "no-such-model"),
    "negative max_tokens": ("completions", dict(prompt="w1", max_tokens=-1), "max_tokens must be a positive"),
    "negative temperature": ("completions", dict(prompt="w1", max_tokens=2, temperature=-1), "temperature"),
    "prompt too long": ("completions", dict(prompt=LONG, max_tokens=2), f"at most {LIMIT} positions"),
    "prompt too long, streamed": ("completions", dict(prompt=LONG, max_tokens=2, stream=True), f"{LIMIT} positions"),
    "completion too long": ("completions", dict(prompt="w1 w2", max_tokens=LIMIT), f"at most {LIMIT - 2}"),
    "empty prompt": ("completions", dict(prompt="", max_tokens=2), "prompt is missing or empty"),
    "message without role": ("chat", dict(messages=[{"content": "w1"}], max_tokens=2), "lacks 'role'"),
    "chat too long": ("chat", dict(messages=[{"role": "user", "content": LONG}], max_tokens=2), f"{LIMIT} positions"),
}


@pytest.mark.parametrize("name", list(BAD_REQUESTS))
def test_bad_request_is_a_400_and_the_server_keeps_serving(client, checkpoint, reference, name):
    import openai

    endpoint, kwargs, message = BAD_REQUESTS[name]
    kwargs = {"model": str(checkpoint), **kwargs}
    create = client.chat.completions.create if endpoint == "chat" else client.completions.create
    with pytest.raises(openai.BadRequestError) as err:
        result = create(**kwargs)
        if kwargs.get("stream"):
            list(result)
    assert err.value.status_code == 400 and message in str(err.value)
    out = client.completions.create(model=str(checkpoint), prompt="w4 w5 w6", max_tokens=4, temperature=0)
    assert out.choices[0].text == reference(_ids(reference, "w4 w5 w6"), 4)


# ---- errors before any server starts: one line, exit status 1 ----


def _cli_error(capsys, argv):
    capsys.readouterr()  # drop what the test's own setup printed (save_pretrained's progress bar)
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("lrpe-hf serve: error: ")
    return err


@pytest.fixture
def deps_present(monkeypatch):
    """The checks of the model come after the dependency check: run them where the serving extras are missing too."""
    import lrpe_hf.serving

    monkeypatch.setattr(lrpe_hf.serving, "SERVING_MODULES", ("json",))


def test_missing_folder(capsys, tmp_path, deps_present):
    assert "no model folder" in _cli_error(capsys, ["serve", str(tmp_path / "missing")])


def test_not_a_causal_lm(capsys, tmp_path, deps_present):
    LrpeForMaskedLM(_config(is_causal=False)).save_pretrained(tmp_path)
    assert "causal language model" in _cli_error(capsys, ["serve", str(tmp_path)])


def test_missing_serving_dependencies(capsys, tmp_path, monkeypatch):
    import lrpe_hf.serving

    monkeypatch.setattr(lrpe_hf.serving, "SERVING_MODULES", ("json", "no_such_serving_module"))
    assert "lrpe_hf[serve]" in _cli_error(capsys, ["serve", str(tmp_path)])


def test_moved_serving_internals_fail_naming_the_version():
    pytest.importorskip("fastapi")
    import transformers
    from lrpe_hf.serving import ServingInternalsChanged, hook

    with pytest.raises(ServingInternalsChanged, match=f"transformers {transformers.__version__}"):
        hook.serve_class({"option_that_serve_does_not_take": 1})


def test_chat_without_template_is_a_bad_request():
    from lrpe_hf.serving import BadRequest, RequestChecks

    checks = RequestChecks(app=None, tokenizer=_tokenizer(chat_template=None), limit=None)
    with pytest.raises(BadRequest, match="no chat template"):
        checks.check("chat", {"messages": [{"role": "user", "content": "w1"}]})
