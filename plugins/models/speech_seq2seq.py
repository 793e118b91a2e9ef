"""Transcription by an encoder-decoder (Whisper, and others ``AutoModelForSpeechSeq2Seq``
loads): the encoder hears the clip's log-mel features, the decoder writes the transcript
after the tokenizer's prefix (Whisper's start-of-transcript, language, task and
no-timestamps tokens). Built by ``model=speech_recognition`` when the checkpoint is an
encoder-decoder (:func:`.speech_recognition.speech_recognizer`).

The loss covers the transcript's tokens and the end of sequence, not the prefix, which
decoding always starts from; a transcript is read back greedily, one token at a time
with the decoder's cache, up to ``model.max_length`` tokens.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from tunewright.errors import ConfigError, DataError
from tunewright.inference import batches_with_logits, to_device
from tunewright.plugins.models.speech_recognition import Transcriber, where
from tunewright.plugins.models.text_task import IGNORE
from tunewright.precision import autocast


class Seq2SeqTranscriber(Transcriber):
    """An encoder-decoder writing the transcript of a recording."""

    head_modules = None  # the output projection is tied to the decoder's embeddings: PEFT leaves it out
    embedding_frame_mask = True  # Whisper pads every clip to its window: average the clip's own frames only

    @property
    def tokenizer(self):
        """The checkpoint's tokenizer, told ``model.language`` where one is set."""
        tokenizer, language = super().tokenizer, self.cfg.language
        # told once per loaded tokenizer: encode reads this property for every example
        if (
            language
            and hasattr(tokenizer, "set_prefix_tokens")
            and getattr(tokenizer, "told_language", None) != language
        ):
            hint = "a code such as 'en' or 'de', or a name such as 'german'"
            try:
                tokenizer.set_prefix_tokens(language=language, task="transcribe", predict_timestamps=False)
            except ValueError:
                raise ConfigError(f"model.language={language!r}: not a language Whisper knows ({hint})") from None
            from transformers.models.whisper.tokenization_whisper import TO_LANGUAGE_CODE

            code = TO_LANGUAGE_CODE.get(language.lower(), language.lower())
            # Whisper's tokenizer finds a language's token by its place in Whisper's list
            if f"<|{code}|>" not in tokenizer.convert_ids_to_tokens(tokenizer.prefix_tokens):
                raise ConfigError(
                    f"model.language={language!r}: the checkpoint's tokenizer has no token for it; "
                    "leave model.language unset for its own language, or pick one it was trained on"
                )
            tokenizer.told_language = language
        return tokenizer

    @property
    def prefix(self) -> list[int]:
        """The tokens every transcript starts after (Whisper's), else the end-of-sequence
        token transformers starts a decoder from."""
        tokenizer = self.tokenizer
        ids = tokenizer("", add_special_tokens=True).input_ids
        return ids[:-1] if ids and ids[-1] == tokenizer.eos_token_id else ids

    def load_pretrained(self, label_names: list[str], source: str | Path | None = None, **options):
        from transformers import AutoModelForSpeechSeq2Seq

        return self.load_with(AutoModelForSpeechSeq2Seq, source, **options)

    # ------------------------------------------------------------------ data

    def encode(self, examples: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The file path; with a transcript, the decoder's input (prefix and transcript)
        and its labels (the transcript and end of sequence, the prefix ignored)."""
        prefix, eos = self.prefix, self.tokenizer.eos_token_id
        features = []
        for example in examples:
            feature = {"audio": example["audio"], "seconds": example.get("seconds", 0.0)}
            if example.get("response") is not None:
                transcript = self.cased(example["response"])
                text = self.tokenizer(transcript, add_special_tokens=False).input_ids
                room = self.cfg.max_length - len(prefix)
                if room < 1:
                    raise DataError(
                        f"{where(example)}: model.max_length={self.cfg.max_length} leaves no room after the prefix"
                    )
                text = text[: room - 1]
                feature.update(
                    transcript=transcript,
                    decoder_input_ids=prefix + text,
                    labels=[IGNORE] * (len(prefix) - 1) + text + [eos],
                )
            features.append(feature)
        return features

    def collate(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """The clips' features; the decoder inputs padded with the pad token, labels with ``IGNORE``."""
        batch = self.extracted(features)
        if "labels" in features[0]:
            width = max(len(f["labels"]) for f in features)
            pad = self.tokenizer.pad_token_id
            batch["decoder_input_ids"] = torch.tensor(
                [f["decoder_input_ids"] + [pad] * (width - len(f["decoder_input_ids"])) for f in features]
            )
            batch["labels"] = torch.tensor([f["labels"] + [IGNORE] * (width - len(f["labels"])) for f in features])
        return batch

    # ------------------------------------------------------------------ objective

    def loss_sum(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Summed cross-entropy over the transcripts' tokens."""
        return torch.nn.functional.cross_entropy(
            logits.float().reshape(-1, logits.shape[-1]),
            batch["labels"].reshape(-1),
            ignore_index=IGNORE,
            reduction="sum",
        )

    def loss_count(self, batch: dict[str, torch.Tensor]) -> int:
        return int((batch["labels"] != IGNORE).sum())

    def hidden_output(self, model, batch: dict[str, torch.Tensor]):
        """The output of a pass whose decoder reads the prefix only: the clips' encoding is what counts."""
        features = batch["input_features"]
        return model(**batch, decoder_input_ids=torch.tensor([self.prefix] * features.shape[0], device=features.device))

    @staticmethod
    def frame_states(output) -> torch.Tensor:
        return output.encoder_last_hidden_state

    # ------------------------------------------------------------------ decoding

    @torch.no_grad()
    def transcribe(self, model, features: list[dict], batch_size: int, device, dtype=None) -> tuple[list[str], float]:
        """Each feature's greedy transcript, in order, and the summed loss where features
        carry labels (a teacher-forced pass over the reference)."""
        model.eval()
        order = sorted(range(len(features)), key=lambda i: features[i]["seconds"])
        transcripts: list[str] = [""] * len(features)
        loss = 0.0
        if "labels" in (features[0] if features else {}):
            for _, batch, logits in batches_with_logits(
                model, features, order, self.collate, batch_size, device, dtype
            ):
                loss += self.loss_sum(logits, batch).item()
        for start in range(0, len(order), batch_size):
            chosen = order[start : start + batch_size]
            batch = to_device(self.extracted([features[i] for i in chosen]), device)
            with autocast(device, dtype):
                texts = self.greedy(model, batch)
            for i, text in zip(chosen, texts):
                transcripts[i] = text
        return transcripts, loss

    def greedy(self, model, batch: dict[str, torch.Tensor]) -> list[str]:
        """The most likely token at each step after the prefix until every row has ended
        (or ``model.max_length`` tokens), the encoder run once and the decoder cached."""
        eos, rows = self.tokenizer.eos_token_id, next(iter(batch.values())).shape[0]
        device = next(iter(batch.values())).device
        tokens = torch.tensor([self.prefix] * rows, device=device)
        output = model(**batch, decoder_input_ids=tokens, use_cache=True)
        encoded = (output.encoder_last_hidden_state,)
        # transformers renamed the decoder cache ``past_key_values`` to ``cache`` within 5.x
        cache = "cache" if "cache" in getattr(type(output), "__dataclass_fields__", {}) else "past_key_values"
        written: list[torch.Tensor] = []
        ended = torch.zeros(rows, dtype=torch.bool, device=device)
        for _ in range(self.cfg.max_length - tokens.shape[1]):
            step = output.logits[:, -1].argmax(-1)
            step = torch.where(ended, torch.full_like(step, eos), step)
            written.append(step)
            ended |= step == eos
            if ended.all():
                break
            output = model(
                encoder_outputs=encoded,
                decoder_input_ids=step[:, None],
                **{cache: getattr(output, cache)},
                use_cache=True,
            )
        if not written:
            return [""] * rows
        texts = self.tokenizer.batch_decode(torch.stack(written, dim=1).tolist(), skip_special_tokens=True)
        return [" ".join(text.split()) for text in texts]
