"""What each tuning method trains and costs, on a tiny model and on the default model.

For every method, in its own process (so peak memory is its own): build the model
through the method (freezing what the task keeps pre-trained, as a run does), count
trainable and total parameters and the bytes of what ``method.save`` writes, then time
10 optimizer steps (AdamW, batch 16 sentences of the bundled reviews, max length 64;
or 16 images or recordings) and read the process's peak RSS.

    python benchmarks/method_costs.py                 # both models: the tables in docs/methods.md
    python benchmarks/method_costs.py --model tiny    # seconds
    python benchmarks/method_costs.py --model vit     # a tiny ViT on 16 images
    python benchmarks/method_costs.py --model wav2vec2  # a tiny wav2vec2 on 16 one-second recordings
    python benchmarks/method_costs.py --model llava   # a tiny LLaVA on 16 images with a question each
    python benchmarks/method_costs.py --model whisper # a tiny Whisper on 16 short recordings, a word each
    python benchmarks/method_costs.py --model ctc     # a tiny wav2vec2 CTC transcriber on the same

The LLaVA and Whisper checkpoints are the test suite's own tiny builders
(tests/vision_language_models.py, tests/audio_models.py), as is the CTC one, so this runs from a checkout.

Nothing else should run meanwhile: on 2 cores a second job halves every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

METHODS = {
    "full": {},
    "freeze": {"top_k": 2},
    "lora": {},
    "ia3": {},
    "prompt": {},
    "prefix": {},
    "adapter": {"placement": "houlsby"},
    "adapter_pfeiffer": {"placement": "pfeiffer"},
}
STEPS, BATCH = 10, 16
IMAGES_DIR = "benchmark_images"  # beside a vision model: its batch
RECORDINGS_DIR = "benchmark_recordings"  # beside an audio model: its batch
BATCH_FILE = "benchmark_batch.json"  # beside a generative media model: its kind and its examples
TEXT_ONLY = {"prompt", "prefix"}  # they extend a text input (refused for images and audio)
TESTS = Path(__file__).resolve().parents[1] / "tests"  # the suite's tiny LLaVA and Whisper builders


def measure(model: str, name: str) -> dict:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from omegaconf import OmegaConf

    from tunewright.plugin_manager import get_plugins

    torch.manual_seed(0)
    plugins = get_plugins()
    kind = model_kind(model)
    schema = plugins.registries["models"].get(kind).schema
    task = plugins.registries["models"].build(
        OmegaConf.structured(schema(kind=kind, name_or_path=model, max_length=64))
    )
    kind = name.split("_")[0]
    schema = plugins.registries["methods"].get(kind).schema
    method = plugins.registries["methods"].build(OmegaConf.structured(schema(kind=kind, **METHODS[name])))
    network = method.apply(task.load_pretrained(["negative", "positive"]), task)
    task.keep_frozen(network)  # as a run does: wav2vec2's feature encoder stays pre-trained
    trainable = sum(p.numel() for p in network.parameters() if p.requires_grad)
    total = sum(p.numel() for p in network.parameters())
    with tempfile.TemporaryDirectory() as tmp:
        method.save(network, Path(tmp))
        saved = sum(f.stat().st_size for f in Path(tmp).rglob("*") if f.is_file())
    batch = task.collate(task.encode(task.prepare(batch_examples(model), ["negative", "positive"])))
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    optimizer = torch.optim.AdamW([p for p in network.parameters() if p.requires_grad], lr=1e-4)
    network.train()
    start = time.perf_counter()
    for _ in range(STEPS):
        loss = task.loss_sum(network(**inputs).logits, batch) / task.loss_count(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    seconds = (time.perf_counter() - start) / STEPS
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"trainable": trainable, "total": total, "saved_mb": saved / 2**20, "step_s": seconds, "peak_mb": peak}


def model_kind(model: str) -> str:
    """The model part that loads ``model``: what its batch beside it says."""
    if Path(model, BATCH_FILE).is_file():
        return json.loads(Path(model, BATCH_FILE).read_text())["kind"]
    if Path(model, IMAGES_DIR).is_dir():
        return "image_classification"
    return "audio_classification" if Path(model, RECORDINGS_DIR).is_dir() else "sequence_classification"


def batch_examples(model: str) -> list[dict]:
    """The first ``BATCH`` review sentences, or the images, recordings or examples beside a model."""
    if Path(model, BATCH_FILE).is_file():
        return json.loads(Path(model, BATCH_FILE).read_text())["examples"]
    for field, folder in (("image", IMAGES_DIR), ("audio", RECORDINGS_DIR)):
        if Path(model, folder).is_dir():
            files = sorted(Path(model, folder).iterdir())[:BATCH]
            return [{field: str(path), "label": i % 2} for i, path in enumerate(files)]
    from tunewright.plugins.datasets.ecommerce_reviews import DATA, DOMAIN_FILES
    from tunewright.readers import read_separated_lines

    rows = list(read_separated_lines(DATA / DOMAIN_FILES["amazon"], "\t"))[:BATCH]
    return [{"text": t, "label": int(label)} for _, t, label in rows]


def tiny_vit(directory: Path) -> str:
    """A random ViT (4 layers, width 64, 32-pixel input) and ``BATCH`` random 48-pixel images."""
    import numpy as np
    from PIL import Image
    from transformers import ViTConfig, ViTModel
    from transformers.models.vit.image_processing_pil_vit import ViTImageProcessorPil

    ViTModel(
        ViTConfig(
            image_size=32,
            patch_size=4,
            hidden_size=64,
            num_hidden_layers=4,
            num_attention_heads=4,
            intermediate_size=128,
        )
    ).save_pretrained(directory)
    ViTImageProcessorPil(size={"height": 32, "width": 32}).save_pretrained(directory)
    rng = np.random.default_rng(0)
    (directory / IMAGES_DIR).mkdir()
    for i in range(BATCH):
        Image.fromarray(rng.integers(0, 255, size=(48, 48, 3), dtype=np.uint8)).save(
            directory / IMAGES_DIR / f"{i:02d}.png"
        )
    return str(directory)


def tiny_wav2vec2(directory: Path) -> str:
    """A random wav2vec2 (4 layers, width 64, wav2vec2's seven-layer feature encoder at
    width 64) and ``BATCH`` one-second 16 kHz recordings of noise."""
    import numpy as np
    import soundfile
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

    Wav2Vec2Model(
        Wav2Vec2Config(
            hidden_size=64,
            num_hidden_layers=4,
            num_attention_heads=4,
            intermediate_size=128,
            conv_dim=(64,) * 7,
            num_conv_pos_embeddings=32,
            num_conv_pos_embedding_groups=4,
        )
    ).save_pretrained(directory)
    Wav2Vec2FeatureExtractor(sampling_rate=16000, return_attention_mask=True).save_pretrained(directory)
    rng = np.random.default_rng(0)
    (directory / RECORDINGS_DIR).mkdir()
    for i in range(BATCH):
        soundfile.write(directory / RECORDINGS_DIR / f"{i:02d}.wav", 0.1 * rng.standard_normal(16000), 16000)
    return str(directory)


def tiny_llava(directory: Path) -> str:
    """The suite's random LLaVA (a 16-pixel CLIP tower in 4-pixel patches, a two-layer
    Llama of width 32) and ``BATCH`` coloured images, each asked its colour."""
    sys.path.insert(0, str(TESTS))
    from vision_language_models import save_tiny_llava
    from vision_models import write_images

    model = save_tiny_llava(directory / "model")
    images = write_images(directory / "images", BATCH, ["red", "green"])
    examples = [{"image": str(path), "text": "which colour is it?", "response": colour} for path, colour in images]
    (model / BATCH_FILE).write_text(json.dumps({"kind": "vision_language", "examples": examples}))
    return str(model)


def tiny_transcriber(directory: Path, architecture: str) -> str:
    """The suite's random one-layer Whisper (width 32, 16 mel bins), or its wav2vec2 with
    a CTC head over letters (``architecture="ctc"``), and ``BATCH`` recordings of 0.3 to
    0.6 s, each transcribed as its word."""
    sys.path.insert(0, str(TESTS))
    from audio_models import WORDS, save_tiny_ctc_model, save_tiny_whisper, write_recordings

    model = (save_tiny_whisper if architecture == "whisper" else save_tiny_ctc_model)(directory / "model")
    recordings = write_recordings(directory / "audio", BATCH, list(WORDS))
    examples = [{"audio": str(path), "response": word} for path, word in recordings]
    (model / BATCH_FILE).write_text(json.dumps({"kind": "speech_recognition", "examples": examples}))
    return str(model)


def tiny_model(directory: Path) -> str:
    from transformers import AutoModel, AutoTokenizer, BertConfig

    from tunewright.embedded import resolve_model_path

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path("embedded:all-MiniLM-L6-v2"))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=64,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=128,
        max_position_embeddings=128,
    )
    AutoModel.from_config(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return str(directory)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--model",
        choices=["tiny", "default", "vit", "wav2vec2", "llava", "whisper", "ctc", "both"],
        default="both",
        help="both: the tiny and the default text model",
    )
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(measure(*args.worker)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        builders = {
            "tiny (BERT, 4 layers, width 64)": lambda: tiny_model(Path(tmp, "bert")),
            "default (all-MiniLM-L6-v2)": lambda: "embedded:all-MiniLM-L6-v2",
            "vit (ViT, 4 layers, width 64, 32-pixel images)": lambda: tiny_vit(Path(tmp, "vit")),
            "wav2vec2 (4 layers, width 64, 1-second recordings)": lambda: tiny_wav2vec2(Path(tmp, "wav2vec2")),
            "llava (CLIP tower 16 px, Llama 2 layers, width 32)": lambda: tiny_llava(Path(tmp, "llava")),
            "whisper (1 layer, width 32, 16 mel bins)": lambda: tiny_transcriber(Path(tmp, "whisper"), "whisper"),
            "ctc (wav2vec2, 2 layers, width 32, a CTC head over letters)": lambda: tiny_transcriber(
                Path(tmp, "ctc"), "ctc"
            ),
        }
        wanted = ("tiny", "default") if args.model == "both" else (args.model,)
        for title, build in builders.items():
            if not title.startswith(wanted):
                continue
            model = build()
            media = not title.startswith(("tiny", "default"))
            inputs = {
                "vit": "images",
                "wav2vec2": "recordings",
                "llava": "images with a question and answer",
                "whisper": "recordings of 0.3-0.6 s, a word each",
                "ctc": "recordings of 0.3-0.6 s, a word each",
            }.get(title.split()[0], "sentences, max length 64")
            print(f"\n{title}: {STEPS} steps of {BATCH} {inputs}, 2 CPU cores\n")
            print("| method | trainable | share | saved (MB) | s/step | peak RSS (MB) |")
            print("|---|---|---|---|---|---|")
            for name in METHODS:
                if media and name in TEXT_ONLY:
                    continue
                out = subprocess.run(
                    [sys.executable, __file__, "--worker", model, name], capture_output=True, text=True, check=True
                )
                r = json.loads(out.stdout.strip().splitlines()[-1])
                print(
                    f"| {name} | {r['trainable']:,} | {r['trainable'] / r['total']:.2%} | {r['saved_mb']:.2f} "
                    f"| {r['step_s']:.3f} | {r['peak_mb']:.0f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
