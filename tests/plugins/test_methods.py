"""One conformance table: every model family x every tuning method.

Tiny random models are built from configs, saved with ``save_pretrained`` and loaded
through the model part's real loading path. For each combination: a few steps lower
the loss on a fixed batch; only trainable parameters change; save -> reload on a fresh
base reproduces the logits; merge -> plain transformers model reproduces them too, for
the methods that can merge. Unsupported combinations are listed in ``UNSUPPORTED`` and
must fail with a clear error.
"""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from tunewright.checkpoint import freeze_frozen_statistics
from tunewright.errors import ConfigError
from tunewright.plugin_manager import get_plugins

LABELS = ["negative", "positive"]
TEXTS = [
    "great value",
    "broke after a week",
    "works as described, happy",
    "terrible support",
    "fine",
    "would buy again",
    "arrived late and damaged",
    "ok",
]
METHODS = {  # name: (registered method, options)
    "full": ("full", {}),
    "freeze": ("freeze", {"top_k": 1}),
    "lora": ("lora", {}),
    "dora": ("lora", {"use_dora": True}),
    "ia3": ("ia3", {}),
    "prompt": ("prompt", {"num_virtual_tokens": 4}),
    "prefix": ("prefix", {"num_virtual_tokens": 4}),
    "adapter_houlsby": ("adapter", {"placement": "houlsby"}),
    "adapter_pfeiffer": ("adapter", {"placement": "pfeiffer"}),
}
MERGEABLE = {"full", "freeze", "lora", "dora", "ia3"}
VISION = (
    "vit-image_classification",
    "resnet-image_classification",
    "clip-image_classification",
    "clip-clip",
    "llava-vision_language",
)
AUDIO = ("wav2vec2-audio_classification", "wav2vec2-speech_recognition", "whisper-speech_recognition")
# The test's rate is far above every method's default so ten steps show; full
# fine-tuning of wav2vec2 (its positional convolution and layer norms all training)
# diverges there, and is checked at a rate still 20 times its default.
LEARNING_RATES = {(family, "full"): 1e-3 for family in AUDIO}
# Every (family, method) pair that cannot run, and the error it must raise instead.
UNSUPPORTED = {
    **{(family, "prompt"): "prepends virtual tokens to a text model.s input" for family in VISION + AUDIO},
    **{(family, "prefix"): "before a text model.s input" for family in VISION + AUDIO},
    ("resnet-image_classification", "ia3"): "no default modules for resnet",
    ("resnet-image_classification", "adapter_houlsby"): "no output projections found",
    ("resnet-image_classification", "adapter_pfeiffer"): "no output projections found",
}
WITHOUT_CUDA = {("*", "qlora"): "needs a CUDA GPU"} if not torch.cuda.is_available() else {}


def tiny_config(family: str, vocab_size: int):
    """Two layers of width 32; weights drawn wider than usual (initializer_range) so that
    a random model's outputs differ between texts and a frozen backbone is learnable."""
    from transformers import BertConfig, GPT2Config, LlamaConfig, T5Config

    if family == "bert":
        return BertConfig(
            vocab_size=vocab_size,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=64,
            initializer_range=0.2,
        )
    if family == "t5":
        return T5Config(
            vocab_size=vocab_size,
            d_model=32,
            d_kv=16,
            d_ff=64,
            num_layers=2,
            num_decoder_layers=2,
            num_heads=2,
            pad_token_id=0,
            eos_token_id=102,
            decoder_start_token_id=0,
        )
    if family == "gpt2":
        return GPT2Config(
            vocab_size=vocab_size,
            n_embd=32,
            n_layer=2,
            n_head=2,
            n_positions=64,
            pad_token_id=0,
            bos_token_id=101,
            eos_token_id=102,
        )
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        intermediate_size=64,
        max_position_embeddings=64,
        pad_token_id=0,
        bos_token_id=101,
        eos_token_id=102,
    )


# (architecture, model part): classifiers on every family, language models on the decoders,
# image classifiers on ViT, ResNet and CLIP's vision tower, CLIP scoring label prompts, and
# an audio classifier and a CTC transcriber on wav2vec2, Whisper transcribing, and LLaVA.
FAMILIES = [
    ("bert", "sequence_classification"),
    ("gpt2", "sequence_classification"),
    ("llama", "sequence_classification"),
    ("gpt2", "causal_lm"),
    ("llama", "causal_lm"),
    ("t5", "seq2seq_lm"),
    ("vit", "image_classification"),
    ("resnet", "image_classification"),
    ("clip", "image_classification"),
    ("clip", "clip"),
    ("bert", "token_classification"),
    ("wav2vec2", "audio_classification"),
    ("wav2vec2", "speech_recognition"),
    ("whisper", "speech_recognition"),
    ("llava", "vision_language"),
]


@pytest.fixture(scope="module", params=FAMILIES, ids=[f"{a}-{k}" for a, k in FAMILIES])
def family(request, tmp_path_factory):
    """A tiny random model of the family, saved as a local checkpoint with a tokenizer
    (MiniLM's, with [SEP] as the end-of-sequence token a language model needs) or an
    image processor, and the examples it trains on."""
    from audio_models import WORDS, save_tiny_audio_model, save_tiny_ctc_model, save_tiny_whisper, write_recordings
    from transformers import AutoModel, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer
    from vision_models import save_tiny_vision_model, write_images

    from tunewright.embedded import resolve_model_path

    architecture, kind = request.param
    directory = tmp_path_factory.mktemp(f"{architecture}-{kind}")
    if kind in ("image_classification", "clip"):
        images = write_images(directory / "images", len(TEXTS), LABELS)
        examples = [{"image": str(path), "label": LABELS.index(label)} for path, label in images]
        return kind, save_tiny_vision_model(architecture, directory / "model"), examples, f"{architecture}-{kind}"
    if kind == "vision_language":  # a question about each image, answered with a label's name
        from vision_language_models import save_tiny_llava

        images = write_images(directory / "images", len(TEXTS), LABELS)
        examples = [{"image": str(p), "text": t, "label": i % 2} for i, ((p, _), t) in enumerate(zip(images, TEXTS))]
        return kind, save_tiny_llava(directory / "model"), examples, f"{architecture}-{kind}"
    if kind == "audio_classification":
        recordings = write_recordings(directory / "audio", len(TEXTS), LABELS)
        examples = [{"audio": str(path), "label": LABELS.index(label)} for path, label in recordings]
        return kind, save_tiny_audio_model(directory / "model"), examples, f"{architecture}-{kind}"
    if kind == "speech_recognition":
        recordings = write_recordings(directory / "audio", len(TEXTS), list(WORDS))
        examples = [{"audio": str(path), "response": word} for path, word in recordings]
        save = save_tiny_whisper if architecture == "whisper" else save_tiny_ctc_model
        return kind, save(directory / "model"), examples, f"{architecture}-{kind}"
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path("embedded:all-MiniLM-L6-v2"), eos_token="[SEP]")
    torch.manual_seed(0)
    model_class = {"causal_lm": AutoModelForCausalLM, "seq2seq_lm": AutoModelForSeq2SeqLM}.get(kind, AutoModel)
    model_class.from_config(tiny_config(architecture, tokenizer.vocab_size)).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    if kind == "token_classification":  # a tag per word
        examples = [
            {"text": t, "words": t.split(), "tags": [(i + j) % 2 for j in range(len(t.split()))], "label": None}
            for i, t in enumerate(TEXTS)
        ]
    else:
        examples = [{"text": t, "label": i % 2} for i, t in enumerate(TEXTS)]
    return kind, directory, examples, f"{architecture}-{kind}"


def build(family, method_name: str, options: dict):
    kind, family_dir = family[:2]
    plugins = get_plugins()
    part = plugins.registries["models"].get(kind).schema
    task = plugins.registries["models"].build(
        OmegaConf.structured(part(kind=kind, name_or_path=str(family_dir), max_length=32))
    )
    schema = plugins.registries["methods"].get(method_name).schema
    method = plugins.registries["methods"].build(OmegaConf.structured(schema(kind=method_name, **options)))
    return task, method


def logits_of(model, inputs) -> torch.Tensor:
    """The classifier's logits (CLIP loaded as a plain ``CLIPModel``: its image-to-text scores)."""
    model.eval()
    with torch.no_grad():
        output = model(**inputs)
    return output.logits_per_image if hasattr(output, "logits_per_image") else output.logits


@pytest.mark.parametrize("name", sorted(METHODS))
def test_method_conformance(family, name, tmp_path):
    kind, _, examples, family_id = family
    method_name, options = METHODS[name]
    task, method = build(family, method_name, options)
    features = task.encode(task.prepare(examples, LABELS))
    if (family_id, name) in UNSUPPORTED:
        with pytest.raises(ConfigError, match=UNSUPPORTED[(family_id, name)]):
            method.apply(task.load_pretrained(LABELS), task)
        return
    batch = task.collate(features)
    inputs = {k: v for k, v in batch.items() if k != "labels"}

    torch.manual_seed(0)
    model = method.apply(task.load_pretrained(LABELS), task)
    freeze_frozen_statistics(model)  # as the trainer does: frozen BatchNorm statistics stay pre-trained
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=LEARNING_RATES.get((family_id, name), 2e-2)
    )

    def loss_on_batch() -> float:  # without dropout, so the comparison is not noise
        return (task.loss_sum(logits_of(model, inputs), batch) / task.loss_count(batch)).item()

    first = loss_on_batch()
    model.train()
    for _ in range(10):
        loss = task.loss_sum(model(**inputs).logits, batch) / task.loss_count(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss_on_batch() < first - 1e-3

    changed = {n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])}
    assert changed and changed <= trainable, sorted(changed - trainable)[:5]
    share = sum(p.numel() for n, p in model.named_parameters() if n in trainable) / sum(
        p.numel() for p in model.parameters()
    )
    assert share == 1.0 if name == "full" else share < 0.6, share

    expected = logits_of(model, inputs)
    method.save(model, tmp_path / "saved")
    torch.manual_seed(123)  # a fresh base must not depend on the seed: everything trained is in the files
    reloaded = method.load(task, LABELS, tmp_path / "saved")
    torch.testing.assert_close(logits_of(reloaded, inputs), expected, atol=1e-5, rtol=1e-4)

    assert method.can_merge == (name in MERGEABLE), f"{name}: can_merge={method.can_merge}, MERGEABLE says otherwise"
    if not method.can_merge:
        return
    from transformers import (
        AutoModelForAudioClassification,
        AutoModelForCausalLM,
        AutoModelForCTC,
        AutoModelForImageClassification,
        AutoModelForImageTextToText,
        AutoModelForSeq2SeqLM,
        AutoModelForSequenceClassification,
        AutoModelForSpeechSeq2Seq,
        AutoModelForTokenClassification,
        CLIPModel,
    )

    method.merge(reloaded).save_pretrained(tmp_path / "merged")
    auto = {
        "causal_lm": AutoModelForCausalLM,
        "seq2seq_lm": AutoModelForSeq2SeqLM,
        "clip": CLIPModel,
        "token_classification": AutoModelForTokenClassification,
        "image_classification": AutoModelForImageClassification,
        "audio_classification": AutoModelForAudioClassification,
        "vision_language": AutoModelForImageTextToText,
        "speech_recognition": AutoModelForSpeechSeq2Seq if family_id.startswith("whisper") else AutoModelForCTC,
    }.get(kind, AutoModelForSequenceClassification)
    plain = auto.from_pretrained(tmp_path / "merged")
    assert type(plain).__module__.startswith("transformers.")
    torch.testing.assert_close(logits_of(plain, inputs), expected, atol=1e-4, rtol=1e-3)


def test_prefix_keeps_padding_invisible(family):
    """A padded row's logits equal the same row alone: the prefix mask lines up (for a
    language model, the logits at the row's own positions)."""
    if family[3] in VISION + AUDIO:  # prefixes do not apply to images or audio (UNSUPPORTED)
        return
    task, method = build(family, "prefix", {"num_virtual_tokens": 4})
    torch.manual_seed(0)
    model = method.apply(task.load_pretrained(LABELS), task)
    examples = task.prepare(
        [{"text": "short", "label": 0}, {"text": "a much longer sentence with many more words", "label": 1}], LABELS
    )
    features = task.encode(examples)

    def inputs(batch):
        return {k: v for k, v in batch.items() if k != "labels"}

    together = logits_of(model, inputs(task.collate(features)))
    alone = logits_of(model, inputs(task.collate(features[:1])))
    torch.testing.assert_close(
        together[:1, : alone.shape[1]] if alone.dim() == 3 else together[:1], alone, atol=1e-5, rtol=1e-4
    )


@pytest.mark.parametrize(("family_name", "method_name"), sorted(WITHOUT_CUDA))
def test_methods_needing_cuda_stop_before_loading(family_name, method_name, tiny_bert):
    message = WITHOUT_CUDA[(family_name, method_name)]
    with pytest.raises(ConfigError, match=message):
        build(("sequence_classification", tiny_bert), method_name, {})


@pytest.mark.parametrize("method_name", ["freeze", "ia3", "prompt", "prefix", "adapter"])
def test_each_method_runs_the_whole_pipeline_and_reloads(tiny_bert, tmp_path, method_name):
    """Training, audit, drift reference, model card and reload through ``tunewright train``."""
    import json

    import numpy as np
    from conftest import tiny_run_overrides

    import tunewright
    from tunewright.cli import main

    overrides = tiny_run_overrides(tiny_bert, tmp_path, f"method={method_name}", "paths.run_id=r")
    assert main(["train", *overrides]) == 0
    run = tmp_path / "r"
    results = json.loads((run / "results.json").read_text())
    assert 0 < results["train"]["trainable_parameters"] < results["train"]["total_parameters"]
    assert (run / "reports" / "drift_reference" / "profile.json").is_file() and (run / "MODEL_CARD.md").is_file()
    rows = [json.loads(line) for line in (run / "test_predictions.jsonl").read_text().splitlines()]
    reloaded = tunewright.load_run(run).predict([row["text"] for row in rows])
    expected = np.array([[row["prediction"]["probabilities"][label] for label in LABELS] for row in rows])
    got = np.array([[p["probabilities"][label] for label in LABELS] for p in reloaded])
    np.testing.assert_allclose(got, expected, atol=1e-5)
