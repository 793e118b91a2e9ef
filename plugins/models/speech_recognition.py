"""``kind: speech_recognition``: transcription, by CTC (connectionist temporal
classification) with any checkpoint ``AutoModelForCTC`` loads (wav2vec2, HuBERT, WavLM,
Data2Vec audio) and its character vocabulary, or by an encoder-decoder that writes the
transcript (Whisper, :mod:`.speech_seq2seq`) — chosen by the checkpoint's config.

Examples are ``{"audio": path, "response": transcript}``
(``data=csv data.audio_column=file data.response_column=transcript data.label_column=null``).
A CTC model emits one vocabulary distribution per ~20 ms frame; the CTC loss sums over
every alignment of the transcript to the frames, and a transcript is read back greedily
(the most likely token per frame, repeats merged, blanks dropped). Evaluation reports the
loss per transcript token and the word and character error rates (:mod:`.text_metrics`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Optional

import torch

from tunewright import hookimpl
from tunewright.errors import ConfigError, DataError
from tunewright.inference import batches_with_logits
from tunewright.plugins.models.audio_task import AudioModelConfig, AudioTask
from tunewright.plugins.models.text_metrics import character_error_rate, word_error_rate
from tunewright.plugins.models.text_task import IGNORE
from tunewright.schema import knob

CASES = {"as_is": str, "lower": str.lower, "upper": str.upper}
PREDICT_BATCH = 8  # recordings transcribed together by predict and serve


@dataclass
class SpeechRecognitionConfig(AudioModelConfig):
    # How transcripts are cased before they meet the vocabulary: a character vocabulary
    # holds one case (wav2vec2-base-960h's is upper case). A character outside it is an
    # error naming the row, so a mismatch is never learnt as unknown tokens.
    transcript_case: str = knob("as_is", choices=tuple(CASES))
    # The language an encoder-decoder (Whisper) is told it hears ("en", "de", ...); null: the
    # tokenizer's own setting. A CTC model ignores it.
    language: Optional[str] = None


class Transcriber(AudioTask):
    """What both transcribers share: ``{"audio", "response"}`` examples in, transcripts
    out, scored by word and character error rates. Subclasses say how a batch is
    transcribed (:meth:`transcribe`)."""

    pipeline_tag = "automatic-speech-recognition"  # the Hugging Face task the model card names
    head_is_new = False  # the checkpoint's head already spells its vocabulary
    class_probabilities = False  # a transcript, not one label: no bias audits; monitors use embed_inputs
    example_fields = ("audio", "response")

    @property
    def tokenizer(self):
        from transformers import AutoTokenizer

        try:
            return self.loaded_preprocessor(AutoTokenizer)
        except (OSError, ValueError, TypeError) as error:
            raise ConfigError(
                f"model.name_or_path={self.cfg.name_or_path}: no tokenizer for its CTC vocabulary ({error}); "
                "start from a checkpoint fine-tuned for CTC, such as facebook/wav2vec2-base-960h"
            ) from None

    def preprocessors(self) -> list:
        return [self.feature_extractor, self.tokenizer]

    def prepare(self, examples: list[dict[str, Any]], label_names: list[str]) -> list[dict[str, Any]]:
        """Every example carries a transcript (``data.response_column``)."""
        for example in examples:
            if not str(example.get("response") or "").strip():
                raise DataError(
                    f"{where(example)}: no transcript; speech recognition trains on data.response_column "
                    "(data=csv data.audio_column=file data.response_column=transcript data.label_column=null)"
                )
        return examples

    def cased(self, transcript: Any) -> str:
        """The transcript as the model learns it: ``model.transcript_case``, whitespace collapsed."""
        return " ".join(CASES[self.cfg.transcript_case](str(transcript)).split())

    def transcribe(self, model, features: list[dict], batch_size: int, device, dtype=None) -> tuple[list[str], float]:
        """Each feature's transcript, in order, and the summed loss where features carry labels."""
        raise NotImplementedError

    def evaluate(self, model, features: list[dict], batch_size: int, device, dtype=None):
        """Loss per transcript token, word and character error rates; the outputs are
        the transcripts."""
        transcripts, loss = self.transcribe(model, features, batch_size, device, dtype)
        references = [f["transcript"] for f in features]
        tokens = sum(sum(1 for token in f["labels"] if token != IGNORE) for f in features)
        return {
            "loss": loss / max(tokens, 1),
            "wer": word_error_rate(transcripts, references),
            "cer": character_error_rate(transcripts, references),
        }, transcripts

    def test_predictions(
        self, model, examples: list[dict[str, Any]], outputs: list[str], label_names: list[str], device
    ) -> tuple[list[dict], dict]:
        """Each test example with the transcript the evaluation read out."""
        return [{**e, "prediction": {"transcript": t}} for e, t in zip(examples, outputs)], {}

    def predict_inputs(self, model, inputs: list[str], device) -> list[dict[str, str]]:
        """``{"transcript": text}`` per recording path."""
        features = [{"audio": path, "seconds": 0.0} for path in inputs]
        transcripts, _ = self.transcribe(model, features, PREDICT_BATCH, device)
        return [{"transcript": text} for text in transcripts]


class CtcTranscriber(Transcriber):
    """A CTC model: a vocabulary distribution per frame, read out greedily."""

    head_modules = ("lm_head",)  # the per-frame vocabulary layer, trained in full beside any adapter

    @cached_property
    def model_config(self):
        from transformers import AutoConfig

        return AutoConfig.from_pretrained(
            self.source, revision=self.cfg.revision, trust_remote_code=self.cfg.trust_remote_code
        )

    def load_pretrained(self, label_names: list[str], source: str | Path | None = None, **options):
        """The CTC model; its loss is computed here (:meth:`loss_sum`), so the
        checkpoint's own loss settings do not matter."""
        from transformers import AutoModelForCTC

        model = self.load_with(AutoModelForCTC, source, **options)
        head = model.get_output_embeddings() or getattr(model, "lm_head", None)
        if head is not None and head.out_features < len(self.tokenizer):
            raise ConfigError(
                f"model.name_or_path={self.cfg.name_or_path}: its CTC head spells {head.out_features} tokens but its "
                f"tokenizer has {len(self.tokenizer)}; use the tokenizer the checkpoint was trained with"
            )
        return model

    # ------------------------------------------------------------------ data

    def encode(self, examples: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The file path and the transcript's token ids; samples are decoded per batch."""
        features = []
        for example in examples:
            feature = {"audio": example["audio"], "seconds": example.get("seconds", 0.0)}
            if example.get("response") is not None:
                transcript = self.cased(example["response"])
                feature.update(transcript=transcript, labels=self.spelled(transcript, example))
            features.append(feature)
        return features

    def spelled(self, transcript: str, example: dict[str, Any]) -> list[int]:
        """The transcript's token ids; a character the vocabulary lacks is an error."""
        tokenizer = self.tokenizer
        ids = tokenizer(transcript, add_special_tokens=False).input_ids
        if tokenizer.unk_token_id is not None and tokenizer.unk_token_id in ids:
            vocabulary = tokenizer.get_vocab()
            missing = sorted({c for c in transcript if c != " " and c not in vocabulary}) or ["(a token)"]
            raise DataError(
                f"{where(example)}: the transcript has characters the model's vocabulary lacks: "
                f"{' '.join(repr(c) for c in missing[:8])}; remove them from the data, or set "
                f"model.transcript_case (now {self.cfg.transcript_case}) to the vocabulary's case"
            )
        return ids

    def collate(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """The extracted audio; ``labels`` are the transcripts' ids padded with ``IGNORE``."""
        batch = self.extracted(features)
        if "labels" in features[0]:
            width = max(len(f["labels"]) for f in features)
            batch["labels"] = torch.tensor(
                [f["labels"] + [IGNORE] * (width - len(f["labels"])) for f in features], dtype=torch.long
            )
        return batch

    # ------------------------------------------------------------------ objective

    def frame_counts(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """How many of the logits' frames each clip's own samples produced: every
        convolution's ``(length - kernel) // stride + 1`` on the unpadded sample count
        (every frame where the extractor gave no mask, as transformers does)."""
        frames = logits.shape[1]
        if "attention_mask" not in batch:
            return torch.full((logits.shape[0],), frames, dtype=torch.long, device=logits.device)
        lengths = batch["attention_mask"].sum(-1).long()
        config = self.model_config
        for kernel, stride in zip(config.conv_kernel, config.conv_stride):
            lengths = torch.div(lengths - kernel, stride, rounding_mode="floor") + 1
        if getattr(config, "add_adapter", False):
            for _ in range(config.num_adapter_layers):
                lengths = torch.div(lengths - 1, config.adapter_stride, rounding_mode="floor") + 1
        return lengths.clamp(min=0, max=frames)

    def loss_sum(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The CTC loss summed over the batch's transcripts (blank: the pad token); a
        transcript longer than its clip's frames has no alignment and adds nothing."""
        labels = batch["labels"]
        targets = labels != IGNORE
        log_probs = torch.nn.functional.log_softmax(logits.float(), dim=-1).transpose(0, 1)
        return torch.nn.functional.ctc_loss(
            log_probs,
            labels[targets],
            self.frame_counts(logits, batch),
            targets.sum(-1),
            blank=self.tokenizer.pad_token_id,
            reduction="sum",
            zero_infinity=True,
        )

    def loss_count(self, batch: dict[str, torch.Tensor]) -> int:
        return int((batch["labels"] != IGNORE).sum())

    # ------------------------------------------------------------------ evaluation and prediction

    def read_out(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> list[str]:
        """Greedy CTC decoding of each clip's own frames (an unknown token is left out)."""
        best = logits.argmax(-1).cpu()
        counts = self.frame_counts(logits, batch).cpu()
        return [
            " ".join(text.split())
            for text in self.tokenizer.batch_decode(
                [row[:n].tolist() for row, n in zip(best, counts)], skip_special_tokens=True
            )
        ]

    @torch.no_grad()
    def transcribe(self, model, features: list[dict], batch_size: int, device, dtype=None) -> tuple[list[str], float]:
        """Each feature's transcript, in order, and the summed CTC loss where features
        carry labels; clips of similar length share a batch."""
        model.eval()
        order = sorted(range(len(features)), key=lambda i: features[i]["seconds"])
        transcripts: list[str] = [""] * len(features)
        loss = 0.0
        for chosen, batch, logits in batches_with_logits(
            model, features, order, self.collate, batch_size, device, dtype
        ):
            if "labels" in batch:
                loss += self.loss_sum(logits, batch).item()
            for i, text in zip(chosen, self.read_out(logits, batch)):
                transcripts[i] = text
        return transcripts, loss


def where(example: dict[str, Any]) -> str:
    """The example's file and row when its loader recorded them, else its recording."""
    origin = example.get("origin")
    return f"{origin['source']}, row {origin['row']}" if origin else str(example.get("audio"))


def speech_recognizer(cfg: SpeechRecognitionConfig) -> Transcriber:
    """The transcriber the checkpoint needs: an encoder-decoder (Whisper) writes the
    transcript; any other speech model spells it by CTC."""
    from transformers import AutoConfig

    from tunewright.embedded import resolve_model_path

    config = AutoConfig.from_pretrained(
        resolve_model_path(cfg.name_or_path), revision=cfg.revision, trust_remote_code=cfg.trust_remote_code
    )
    if config.is_encoder_decoder:
        from tunewright.plugins.models.speech_seq2seq import Seq2SeqTranscriber

        return Seq2SeqTranscriber(cfg)
    return CtcTranscriber(cfg)


@hookimpl
def tunewright_register_models(registry):
    registry.add(
        "speech_recognition",
        speech_recognizer,
        schema=SpeechRecognitionConfig,
        description="speech recognition: CTC (wav2vec2, HuBERT, WavLM) or Whisper; word and character error rates",
    )
