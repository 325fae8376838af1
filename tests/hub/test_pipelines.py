"""transformers.pipeline works with the package's models and processors, and gives what the model computes.

text-generation / fill-mask / text-classification (lrpe), image-classification (lrpe_vit, mixformer),
video-classification (fixation_vit, PyAV, a generated .mp4) and lrpe_hf.SmoothingPipeline (dgfn).
"""

from __future__ import annotations

import numpy as np
import PIL.Image
import pytest
import torch
from transformers import PreTrainedTokenizerFast, pipeline

import lrpe_hf

from .tiny_models import registration, tiny_config

WORDS = ["the", "cat", "dog", "sat", "on", "mat", "a", "big", "small", "red", "ran", "fast", "and", "is", "was"]


def _tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers

    specials = ["[PAD]", "[UNK]", "[BOS]", "[EOS]", "[MASK]", "[CLS]", "[SEP]"]
    vocab = {token: i for i, token in enumerate(specials + WORDS)}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="[PAD]", unk_token="[UNK]",
                                   bos_token="[BOS]", eos_token="[EOS]", mask_token="[MASK]", cls_token="[CLS]",
                                   sep_token="[SEP]")


def _save_lrpe(tmp_path, auto_name, **config_overrides):
    model_class = registration("lrpe").AUTO_MODEL_CLASSES[auto_name]
    torch.manual_seed(0)
    config = tiny_config("lrpe", auto_name)
    for key, value in {"vocab_size": 32, "eos_token_id": 3, "bos_token_id": 2, **config_overrides}.items():
        setattr(config, key, value)
    model = model_class(config).eval()
    folder = tmp_path / auto_name
    model.save_pretrained(folder)
    _tokenizer().save_pretrained(folder)
    return model, folder


def test_text_generation(tmp_path):
    model, folder = _save_lrpe(tmp_path, "AutoModelForCausalLM")
    generator = pipeline("text-generation", model=str(folder))
    assert isinstance(generator.model, lrpe_hf.LrpeForCausalLM)
    out = generator("the cat sat", max_new_tokens=6, do_sample=False, return_tensors=True)
    ids = generator.tokenizer("the cat sat", return_tensors="pt")
    expected = model.generate(**ids, max_new_tokens=6, do_sample=False)
    assert out[0]["generated_token_ids"] == expected[0].tolist()
    text = generator("the dog", max_new_tokens=4, do_sample=False)[0]["generated_text"]
    assert text.startswith("the dog")


def test_fill_mask(tmp_path):
    model, folder = _save_lrpe(tmp_path, "AutoModelForMaskedLM")
    fill = pipeline("fill-mask", model=str(folder))
    results = fill("the cat [MASK] on the mat", top_k=3)
    ids = fill.tokenizer("the cat [MASK] on the mat", return_tensors="pt")
    with torch.no_grad():
        logits = model(**ids).logits[0, 2]
    top = torch.softmax(logits, -1).topk(3)
    assert [r["token"] for r in results] == top.indices.tolist()
    np.testing.assert_allclose([r["score"] for r in results], top.values.numpy(), rtol=1e-5)


def test_text_classification(tmp_path):
    model, folder = _save_lrpe(tmp_path, "AutoModelForSequenceClassification")
    classifier = pipeline("text-classification", model=str(folder), top_k=None)
    results = classifier("the big dog ran fast")
    results = results[0] if isinstance(results[0], list) else results
    ids = classifier.tokenizer("the big dog ran fast", return_tensors="pt")
    with torch.no_grad():
        probs = torch.softmax(model(**ids).logits[0], -1)
    got = {r["label"]: r["score"] for r in results}
    expected = {model.config.id2label[i]: float(p) for i, p in enumerate(probs)}
    assert got.keys() == expected.keys()
    for label in got:
        assert got[label] == pytest.approx(expected[label], rel=1e-5)


@pytest.mark.parametrize("model_type", ["lrpe_vit", "mixformer"])
def test_image_classification(model_type, tmp_path):
    auto_name = "AutoModelForImageClassification"
    model_class = registration(model_type).AUTO_MODEL_CLASSES[auto_name]
    torch.manual_seed(0)
    model = model_class(tiny_config(model_type, auto_name)).eval()
    processor_class = getattr(registration(model_type), "IMAGE_PROCESSOR_CLASS", None)
    if processor_class is None:  # mixformer ships no processor: pair it with the ViT one at its size
        processor_class = registration("lrpe_vit").IMAGE_PROCESSOR_CLASS
    size = model.config.image_size
    processor = processor_class(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
    folder = tmp_path / model_type
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    classifier = pipeline("image-classification", model=str(folder))
    image = PIL.Image.fromarray(np.random.default_rng(0).integers(0, 255, (24, 30, 3), dtype=np.uint8))
    results = classifier(image, top_k=model.config.num_labels)
    with torch.no_grad():
        probs = torch.softmax(model(**processor(images=image, return_tensors="pt")).logits[0], -1)
    assert {r["label"]: pytest.approx(r["score"], rel=1e-5) for r in results} == {
        model.config.id2label[i]: float(p) for i, p in enumerate(probs)
    }


def _write_mp4(path, frames):
    av = pytest.importorskip("av")
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=8)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def test_video_classification_pyav(tmp_path):
    av = pytest.importorskip("av")
    auto_name = "AutoModelForVideoClassification"
    model_class = registration("fixation_vit").AUTO_MODEL_CLASSES[auto_name]
    torch.manual_seed(0)
    model = model_class(tiny_config("fixation_vit", auto_name)).eval()
    size = model.config.image_size
    processor = registration("fixation_vit").IMAGE_PROCESSOR_CLASS()
    processor = type(processor).from_dict({**processor.to_dict(), "size": {"shortest_edge": size},
                                           "crop_size": {"height": size, "width": size}})
    folder = tmp_path / "video-model"
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    # a moving bright square on a dark background, 10 frames
    frames = np.zeros((10, 48, 48, 3), dtype=np.uint8)
    for t in range(10):
        frames[t, 8:24, 2 + 2 * t : 18 + 2 * t] = (220, 180, 40)
    video = tmp_path / "clip.mp4"
    _write_mp4(video, frames)
    classifier = pipeline("video-classification", model=str(folder))
    results = classifier(str(video), top_k=model.config.num_labels)
    # independent path: decode the same first num_frames frames with PyAV, processor, model
    with av.open(str(video)) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)][: model.config.num_frames]
    with torch.no_grad():
        inputs = processor(decoded, return_tensors="pt")
        probs = torch.softmax(model(**inputs).logits[0], -1)
    assert {r["label"]: pytest.approx(r["score"], rel=1e-4) for r in results} == {
        model.config.id2label[i]: float(p) for i, p in enumerate(probs)
    }


def test_smoothing_pipeline(tmp_path):
    if not hasattr(lrpe_hf, "SmoothingPipeline"):
        pytest.skip("lrpe_hf.SmoothingPipeline not merged")
    model_class = registration("dgfn").AUTO_MODEL_CLASSES["AutoModelForImageToImage"]
    torch.manual_seed(0)
    model = model_class(tiny_config("dgfn")).eval()
    folder = tmp_path / "dgfn"
    model.save_pretrained(folder)
    registration("dgfn").IMAGE_PROCESSOR_CLASS().save_pretrained(folder)
    array = np.random.default_rng(0).integers(0, 255, (20, 28, 3), dtype=np.uint8)
    PIL.Image.fromarray(array).save(tmp_path / "in.png")
    smoother = lrpe_hf.SmoothingPipeline(str(folder))
    outputs = [smoother(tmp_path / "in.png"), smoother(PIL.Image.fromarray(array)), smoother(array)]
    for out in outputs:
        assert isinstance(out, PIL.Image.Image) and out.size == (28, 20)
    assert np.array_equal(np.asarray(outputs[0]), np.asarray(outputs[1]))
    assert np.array_equal(np.asarray(outputs[1]), np.asarray(outputs[2]))
    with torch.no_grad():
        pixels = torch.from_numpy(array.astype(np.float32) / 255).permute(2, 0, 1)[None]
        direct = model(pixel_values=pixels).reconstruction[0].clamp(0, 1).permute(1, 2, 0).numpy()
    assert np.abs(np.asarray(outputs[2]).astype(np.float32) / 255 - direct).max() <= 1 / 255 + 1e-6
