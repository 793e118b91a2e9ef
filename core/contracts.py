"""What the core asks of every part a plugin registers, in one place.

Six contracts, one per registry: a :class:`Task` (what the ``models`` registry builds:
it knows one task family's data, batches, loss, metrics and predictions; the
``torch.nn.Module`` it loads is the *model*), a :class:`Method` (how the model is
tuned and saved), a :class:`DataSource` (a dataset part), an :class:`Audit`, a
:class:`Monitor` and a :class:`Tracker`. Each is a :class:`typing.Protocol`: a part may
implement every member itself, or subclass the contract and inherit the defaults of
the optional ones. Optional members are capabilities with an explicit default (a task
without its own evaluation, a method that cannot merge); the core never probes a part
for a member. :class:`~tunewright.registry.Registry` checks a part against its
contract when it is built (an audit's or monitor's class when it is registered) and
names what is missing.

Examples pass between data loaders, cleaning, the token cache and tasks as
:class:`Example` dicts; a task lists the fields it reads in :attr:`Task.example_fields`
and the token cache keys on exactly those.

Every member below says what it receives, what it returns, and when and on which
ranks the core calls it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, TypedDict, runtime_checkable

import numpy as np
import torch

if TYPE_CHECKING:
    from tunewright.data import DomainData
    from tunewright.predictor import Predictor
    from tunewright.run import Run


class Example(TypedDict, total=False):
    """One row of a dataset, as loaders make it and tasks read it.

    A loader sets the fields its data has; ``label`` is an index into the dataset's
    label names (``None`` for an unlabelled batch). ``sensitive`` and ``origin`` never
    reach a model: they are for the audits and for error messages.
    """

    text: str  # the input text (a tagger's words joined by spaces)
    text_pair: str  # a second text, for pair classification
    image: str  # the absolute path of an image file
    audio: str  # the absolute path of an audio file
    seconds: float  # an audio file's duration, measured when the data loaded
    words: list[str]  # a tagger's input words
    tags: list[int]  # one label index per word
    messages: list[dict[str, str]]  # a chat: {"role", "content"} turns, the last one the answer
    response: str  # the answer a generative task learns to give
    label: int | None
    sensitive: dict[str, Any]  # the data's sensitive columns, for group audits
    origin: str  # "file:row", for messages that point at the row


EXAMPLE_FIELDS: tuple[str, ...] = tuple(Example.__annotations__)
TEXT_FIELDS = ("text", "text_pair")  # what cleaning normalises and deduplicates on
MEDIA_FIELDS = ("image", "audio")  # inputs given as file paths: hashed by content, decoded per batch
INPUT_FIELDS = ("text", "text_pair", *MEDIA_FIELDS)  # what a retraining's data file carries as inputs

Feature = dict[str, Any]  # an encoded example: token ids, pixel values, labels
Batch = dict[str, torch.Tensor]  # collated features, ready for the model's forward
Verdict = Literal["pass", "inconclusive", "fail", "not_applicable"]


@dataclass
class Evaluation:
    """What audits and monitors receive after training: the trained model (as a
    predictor), its data, and the test split's metrics and predictions."""

    run: Run
    predictor: Predictor
    data: DomainData
    test_metrics: dict[str, float]
    test_predictions: list[dict[str, Any]]

    def predict_proba(self, inputs: list[str]) -> np.ndarray:
        """Class probabilities for any texts (or image paths, for an image task), batched
        like the evaluation."""
        return self.predictor.probabilities(inputs)


# --------------------------------------------------------------------------- task


@runtime_checkable
class Task(Protocol):
    """One task family (text classification, causal LM, tagging, ...) on one checkpoint.

    Built from the ``model`` config node on every rank, before data loads; one object
    serves training, evaluation, prediction and export.
    """

    cfg: Any  # the part's ``model`` config node
    input_field: ClassVar[str]  # the Example field a prediction is made from: "text", "image" or "audio"
    # The Example field of a question asked about the input (a vision-language model's
    # "text", asked about its image); None: a prediction reads the input alone.
    question_field: ClassVar[str | None] = None
    example_fields: ClassVar[tuple[str, ...]]  # the Example fields encode() reads (the token cache's key)
    pipeline_tag: ClassVar[str]  # the Hugging Face task the model card names
    head_is_new: ClassVar[bool]  # True: the head starts untrained, so every method trains it
    # Where the tokenizer or image processor is read from; a run's model/ folder when reloading.
    preprocessor_source: str | Path

    # -- loading and saving: every rank, once per run

    def load_pretrained(
        self, label_names: list[str], source: str | Path | None = None, **options: Any
    ) -> torch.nn.Module:
        """The pre-trained model with a head for ``label_names`` (or a saved full
        fine-tune at ``source``); ``options`` are the method's ``load_options()``."""
        ...

    def pretrained_label_names(self) -> list[str] | None:
        """The labels the checkpoint's own head predicts, or ``None``; the base model is
        audited before training only when they are exactly the run's labels."""
        ...

    def save_artifacts(self, directory: Path, label_names: list[str]) -> None:
        """Write what inference needs besides the weights (tokenizer, label names). Rank 0."""
        ...

    def keep_frozen(self, model: torch.nn.Module) -> None:
        """Freeze what the task keeps pre-trained whatever the method (wav2vec2's
        convolutional feature encoder); called after the method marked its weights.
        Nothing by default."""
        return None

    def read_label_names(self, directory: Path) -> list[str]:
        """The label names :meth:`save_artifacts` wrote in ``directory``."""
        ...

    # -- data: every rank, before training

    def prepare(self, examples: list[Example], label_names: list[str]) -> list[Example]:
        """Examples as this task trains on them (a generative task turns labels into answers)."""
        ...

    def encode(self, examples: list[Example]) -> list[Feature]:
        """Tokenise (or read) examples once; the result may be cached (see :meth:`cache_identity`)."""
        ...

    def collate(self, features: list[Feature]) -> Batch:
        """Pad a batch of features into tensors; ``labels`` when the features carry them."""
        ...

    def collate_train(self, features: list[Feature]) -> Batch:
        """A training batch (a task may augment it); by default :meth:`collate`."""
        return self.collate(features)

    def cache_identity(self) -> dict[str, Any] | None:
        """What :meth:`encode` depends on besides the examples (tokenizer, maximum length),
        for the token cache's key; ``None`` (the default) leaves the task uncached."""
        return None

    # -- the objective: every rank, every step

    def loss_sum(self, logits: torch.Tensor, batch: Batch) -> torch.Tensor:
        """The batch's loss *summed* over its terms; the trainer divides by the step's count."""
        ...

    def loss_count(self, batch: Batch) -> int:
        """How many terms :meth:`loss_sum` adds up (labelled examples, answer tokens)."""
        ...

    def metrics(self, logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
        """Loss and task metrics over one split's logits, when the trainer evaluates."""
        ...

    def evaluate(
        self, model, features: list[Feature], batch_size: int, device, dtype
    ) -> tuple[dict[str, float], Any] | None:
        """The task's own evaluation, ``(metrics, outputs)``, for a task whose full logits
        would not fit in memory (a language model); ``None`` (the default) lets the
        trainer evaluate from every feature's logits with :meth:`metrics`. Every rank."""
        return None

    # -- predictions: rank 0, after training, and whenever a run is reloaded

    def test_predictions(
        self, model, examples: list[Example], outputs: Any, label_names: list[str], device
    ) -> tuple[list[dict[str, Any]], dict[str, float]]:
        """Each test example with its prediction (from the evaluation's ``outputs``), and
        any metrics only predictions can measure (a language model's exact match)."""
        ...

    def predictions(self, logits: np.ndarray, label_names: list[str]) -> list[dict[str, Any]]:
        """``{"label", "probabilities"}`` per row of ``logits`` (for tasks with class probabilities)."""
        ...

    def predict_inputs(self, model, inputs: list[str], device) -> list[dict[str, Any]] | None:
        """The task's own answers for raw inputs (generated text, word tags); ``None``
        (the default) means one label with probabilities per input, from the logits."""
        return None

    def chat(
        self,
        model,
        conversations: list[list[dict[str, str]]],
        device,
        max_new_tokens: int | None = None,
        on_text: Callable[[str], None] | None = None,
    ) -> list[str]:
        """The answer to each conversation (``{"role", "content"}`` turns ending with the
        user's; for a task with a :attr:`question_field`, the first user turn also holds
        the input, ``{"role", "content", "image": path}``), for a task whose
        :attr:`generates` is True; ``tunewright serve``'s OpenAI-style endpoints call it. With ``on_text`` (one conversation), each piece of
        the answer is handed to it as it is generated, the pieces joining to the answer
        returned (a streamed response). Other tasks do not chat."""
        raise NotImplementedError(f"{type(self).__name__} does not generate text")

    # -- what governance may ask of the task

    class_probabilities: ClassVar[bool] = True  # False: no class distribution per input (a tagger, a language model)

    def embed(self, output: Any, batch: Batch) -> torch.Tensor:
        """One embedding per example from a forward's output (hidden states requested),
        what drift monitors compare; by default the last hidden state's token mean."""
        from tunewright.inference import token_mean

        return token_mean(output, batch)

    def embed_inputs(self, model, inputs: list[str], batch_size: int, device, dtype) -> np.ndarray:
        """One embedding per raw input, for a task without class probabilities; by default
        the token mean of the encoded inputs' last hidden state."""
        from tunewright.inference import pooled_hidden_states

        features = self.encode([{self.input_field: value} for value in inputs])
        return pooled_hidden_states(model, features, self.collate, batch_size, device, dtype)

    # -- what methods may ask of the task

    peft_task_type: ClassVar[str | None] = None  # PEFT's task type, or None where PEFT has none (images)
    head_modules: ClassVar[tuple[str, ...] | None] = None  # the head's module names; None: outside the backbone
    # The module whose linear layers LoRA adapts by default (a vision-language model's
    # language model, so its vision tower is never adapted); None: every linear layer
    # outside the head.
    adapted_module: ClassVar[str | None] = None
    generates: ClassVar[bool] = False  # True: the model generates text (prefix tuning's generation path)
    # What an ONNX export answers (``tunewright export format=onnx``, run by
    # tunewright.edge_predictor): "label", one row of class logits per input (token ids from
    # ``tokenizer.json`` or pixel values from ``preprocessor_config.json`` in); "tags", a row of
    # tag logits per token, read at each word's first token; None: the task is not exported.
    edge_answers: ClassVar[str | None] = None

    @property
    def packs_examples(self) -> bool:
        """Whether several examples share one row (packing); a method that prepends
        vectors to the input refuses it. False by default."""
        return False


# --------------------------------------------------------------------------- method


@runtime_checkable
class Method(Protocol):
    """A way to tune a model (full, LoRA, adapters, ...). Built from the ``method`` node
    on every rank, before any model loads, so a method that cannot run here says so
    first."""

    cfg: Any

    def apply(self, model: torch.nn.Module, task: Task) -> torch.nn.Module:
        """Mark (or add) the trainable weights; returns the model to train. Every rank."""
        ...

    def save(self, model: torch.nn.Module, directory: Path) -> None:
        """Write what the method trained into ``directory`` (safetensors). Rank 0."""
        ...

    def load(self, task: Task, label_names: list[str], directory: Path) -> torch.nn.Module:
        """Rebuild the tuned model from a fresh base and what :meth:`save` wrote."""
        ...

    def load_options(self) -> dict[str, Any]:
        """Extra ``from_pretrained`` arguments for the base (a 4-bit quantisation); none by default."""
        return {}

    can_merge: ClassVar[bool] = False  # True: merge() folds the method into plain weights

    def merge(self, model: torch.nn.Module) -> torch.nn.Module:
        """The tuned model as plain weights (``export merged=true``); only when :attr:`can_merge`."""
        raise NotImplementedError(f"{type(self).__name__} cannot merge")

    # True: several runs of this method on one base load the base once, each run's weights
    # beside it (load_beside), one of them active at a time (activate); tunewright serve
    # shares a base this way
    shares_base: ClassVar[bool] = False

    def load_beside(self, model: torch.nn.Module, directory: Path, name: str) -> None:
        """Add the weights :meth:`save` wrote in ``directory`` to ``model`` (one this method's
        :meth:`load` built) under ``name``; only when :attr:`shares_base`."""
        raise NotImplementedError(f"{type(self).__name__} cannot share a base")

    def activate(self, model: torch.nn.Module, name: str) -> None:
        """Make the weights loaded as ``name`` the ones ``model`` computes with (the first
        run's are ``"default"``); only when :attr:`shares_base`."""
        raise NotImplementedError(f"{type(self).__name__} cannot share a base")


# --------------------------------------------------------------------------- data


@runtime_checkable
class DataSource(Protocol):
    """A dataset part, built from the ``data`` node on every rank."""

    cfg: Any

    def load(self) -> DomainData:
        """Splits of :class:`Example` dicts, label names and each source file's SHA-256
        (what the manifest records and a resumed run must match). Bad rows are errors
        naming the file, row and column, or load notes when the config drops them."""
        ...


# --------------------------------------------------------------------------- governance


@runtime_checkable
class Audit(Protocol):
    """A bias audit. Its *class* is the registered factory, called as ``cls(cfg, run)``
    on rank 0 before data loads (so a missing input stops the run before training)."""

    inputs: ClassVar[tuple[str, ...]] = ("text",)  # the task input fields it can audit
    needs_probabilities: ClassVar[bool] = True  # False: it also runs on tasks without class probabilities

    def audit(self, evaluation: Evaluation) -> dict[str, Any]:
        """Judge the model; returns an :class:`~tunewright.governance.results.AuditResult`
        as a dict (``verdict``: a :data:`Verdict`, ``checks``, ``groups``, ``reasons``).
        Called on rank 0 after training, and on the base model when its head fits."""
        ...


@runtime_checkable
class Monitor(Protocol):
    """A drift monitor. Its *class* is the registered factory, called as ``cls(cfg, run)``
    on rank 0 after training and by ``tunewright monitor``."""

    inputs: ClassVar[tuple[str, ...]] = ("text",)
    needs_probabilities: ClassVar[bool] = True

    def record_baseline(self, evaluation: Evaluation) -> dict[str, Any]:
        """Write the run's reference profile from held-out data; returns its summary
        (kept in ``results.json``). Once, after training."""
        ...

    def check(
        self, predictor: Predictor, examples: list[Example], name: str, settings: Any, sources: list[dict[str, str]]
    ) -> dict[str, Any]:
        """Judge a new batch against the reference; writes its report and returns it
        (``status``, ``drift_detected``, ``severity``, ``retrain_recommended``, ...)."""
        ...


@runtime_checkable
class Tracker(Protocol):
    """An experiment tracker: an object whose ``@hookimpl`` methods receive the run's
    lifecycle hooks while it lasts. Built by its factory as ``factory(cfg, run)`` on
    rank 0, for ``tunewright train`` and ``tunewright monitor``."""

    def close(self) -> None:
        """Finish uploads and flush files, success or failure; nothing by default."""
        return None


def missing_members(part: Any, contract: type) -> list[str]:
    """The members of ``contract`` that ``part`` (an instance, or an audit's or monitor's
    class, whose contracts have no instance attributes) lacks."""
    names = {
        name
        for klass in contract.__mro__
        if klass not in (object, Protocol) and klass.__module__ == __name__
        for name in (*vars(klass), *getattr(klass, "__annotations__", {}))
        if not name.startswith("_")
    }
    return sorted(name for name in names if not hasattr(part, name))
