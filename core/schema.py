"""Dataclass schemas for every config group, stored in Hydra's ConfigStore.

Each option file in ``conf/<group>/`` starts from one of these schemas, so a misspelt
key or a value of the wrong type is rejected when the config is composed, before any
model is loaded. Plugins extend the ``*Config`` base of their family with their own
fields (see :mod:`tunewright.registry`).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field, make_dataclass
from functools import partial
from typing import Any, ClassVar, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from tunewright.errors import ConfigError

SCHEMA_SUFFIX = "_schema"


@dataclass(frozen=True)
class Valid:
    """The values one config knob accepts, beyond its type: a numeric range, a set of
    choices or a pattern. Kept in the field's metadata by :func:`knob` and checked by
    :func:`check_values` when a config is composed, before anything loads."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False  # the range excludes ``low`` itself
    high_open: bool = False
    choices: tuple[str, ...] = ()
    pattern: str | None = None  # a regular expression the whole value matches
    meaning: str = ""  # how :meth:`describe` names a pattern

    def accepts(self, value: Any) -> bool:
        if self.choices:
            return value in self.choices
        if self.pattern:
            return isinstance(value, str) and re.fullmatch(self.pattern, value) is not None
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        return not (self.high is not None and (value > self.high or (self.high_open and value == self.high)))

    def describe(self) -> str:
        if self.choices:
            return "one of " + ", ".join(self.choices)
        if self.pattern:
            return self.meaning
        if self.low is not None and self.high is not None:
            return f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"
        if self.low is not None:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        return f"{'<' if self.high_open else '<='} {self.high:g}"


def knob(default: Any, **valid: Any):
    """A schema field with ``default`` whose accepted values :class:`Valid` states."""
    return field(default=default, metadata={"valid": Valid(**valid)})


def check_values(path: str, node, schema: type) -> None:
    """Every knob of ``node`` (and of its nested nodes) within what its schema field
    accepts; raises :class:`~tunewright.errors.ConfigError` naming the key otherwise."""
    for spec in dataclasses.fields(schema):
        if spec.name not in node:
            continue
        valid = spec.metadata.get("valid")
        if valid is not None:
            value = node[spec.name]
            if value is not None and not valid.accepts(value):
                raise ConfigError(f"{path}.{spec.name}={value!r}: must be {valid.describe()}")
        elif spec.default_factory is not dataclasses.MISSING and isinstance(node.get(spec.name), DictConfig):
            nested = spec.default_factory()
            if dataclasses.is_dataclass(nested):
                check_values(f"{path}.{spec.name}", node[spec.name], type(nested))


@dataclass
class PartConfig:
    """A config node that selects one registered part by its ``kind``."""

    kind: str = MISSING


@dataclass
class ModelConfig(PartConfig):
    """A pre-trained model and the task head put on it."""

    name_or_path: str = MISSING  # a hub id or a local directory
    max_length: int = knob(
        128, low=1
    )  # tokens per example (at most the model's positions); longer: more memory and time per step
    trust_remote_code: bool = False  # run code shipped with the checkpoint: opt in only
    revision: Optional[str] = None


@dataclass
class MethodConfig(PartConfig):
    """How the model's weights are adapted (full fine-tuning, LoRA, ...).

    ``default_learning_rate`` is what ``trainer.learning_rate`` becomes when the command
    line leaves it unset: each method trains best at its own rate.
    """

    default_learning_rate: ClassVar[float] = 1e-3


@dataclass
class CleaningConfig:
    """The cleaning every dataset goes through (see ``core/cleaning.py``)."""

    unicode_form: str = knob("NFC", choices=("NFC", "NFKC", "none"))
    collapse_whitespace: bool = True
    max_chars: int = knob(10000, low=1)  # longer texts are truncated or dropped
    over_long: str = knob("truncate", choices=("truncate", "drop"))
    deduplicate: str = knob("near", choices=("near", "exact", "none"))  # near: case and punctuation ignored
    remove_leakage: bool = True  # drop evaluation examples that also appear in an earlier split
    unknown_labels: str = knob("error", choices=("error", "drop"))  # a label outside the label set


@dataclass
class DataConfig(PartConfig):
    """Where examples come from and how they are split."""

    limit: Optional[int] = knob(None, low=1)  # keep at most this many examples (stratified), for quick runs
    validation_fraction: float = knob(
        0.1, low=0, high=1, high_open=True
    )  # of all examples, when the source has no split
    test_fraction: float = knob(
        0.2, low=0, high=1, high_open=True
    )  # of all examples, when the source has no test split
    split_seed: int = 0
    sensitive_columns: list[str] = field(default_factory=list)  # kept for the bias audit, never fed to the model
    label_map: Any = None  # rename labels as read: {0: negative, 1: positive}
    # whose bias probes fit these texts: reviews, support, clinical, finance (or a plugin's)
    probe_domain: Optional[str] = None
    cleaning: CleaningConfig = field(default_factory=CleaningConfig)


@dataclass
class AuditConfig(PartConfig):
    """One bias audit."""


@dataclass
class MonitorConfig(PartConfig):
    """One drift monitor."""


@dataclass
class TrackerConfig(PartConfig):
    """One experiment tracker."""


@dataclass
class DeepSpeedConfig:
    """``trainer.strategy=deepspeed``: which DeepSpeed JSON to run (see ``core/zero/config.py``)."""

    # a bundled config (zero1, zero2, zero3, zero2_offload, zero3_offload) or a JSON file's path
    config: str = "zero2"


@dataclass
class TrainerConfig:
    """The training loop's knobs (see ``core/trainer.py``)."""

    strategy: str = knob(
        "single", choices=("single", "ddp", "fsdp", "deepspeed")
    )  # under torchrun, or launching nproc_per_node itself
    nproc_per_node: int = knob(1, low=1)  # with ddp/fsdp and no torchrun: processes to launch on this machine
    max_epochs: int = knob(3, low=1)
    batch_size: int = knob(16, low=1)  # examples per micro-batch per process; larger: more memory
    gradient_accumulation_steps: int = knob(1, low=1)  # micro-batches per optimizer step
    eval_batch_size: int = knob(64, low=1)
    learning_rate: Optional[float] = knob(
        None, low=0, low_open=True
    )  # null: the method's own default (full 5e-5, lora 1e-3, ...)
    weight_decay: float = knob(0.01, low=0)
    schedule: str = knob("linear", choices=("linear", "cosine"))  # after warmup
    warmup_ratio: float = knob(0.1, low=0, high=1, high_open=True)  # share of steps with linearly rising learning rate
    max_grad_norm: float = knob(1.0, low=0)  # gradient clipping; 0 disables it
    precision: str = knob(
        "auto", choices=("auto", "fp32", "bf16", "fp16")
    )  # auto: bf16 on CUDA (fp16 + grad scaler without bf16) and on CPUs with native bf16, else fp32
    dropout_kernel: str = knob(
        "auto", choices=("auto", "native")
    )  # auto: on the CPU a cheaper dropout mask (keep rate to 1/65536); native: PyTorch's
    gradient_checkpointing: bool = False  # recompute activations: less memory, one extra forward per step
    compile: bool = False  # torch.compile the model: a compile pause; steps no faster on a CPU (docs/benchmarks.md)
    group_by_length: bool = True  # batches of similar length: less padding, same randomness
    eval_every_n_steps: int = knob(0, low=0)  # 0: evaluate after each epoch; the last step is always evaluated
    early_stopping_metric: str = "accuracy"  # validation metric that picks the best weights
    early_stopping_mode: str = knob("max", choices=("max", "min"))
    early_stopping_patience: int = knob(0, low=0)  # stop after this many evaluations without gain; 0: never
    select_best: bool = True  # export the best evaluated weights, not the last
    checkpoint_every_n_steps: int = knob(0, low=0)  # 0: checkpoint at every evaluation
    keep_last_checkpoints: int = knob(2, low=0)  # 0: keep every checkpoint
    resume: str = knob("auto", choices=("auto", "never"))  # auto: continue from the newest valid checkpoint
    resume_fallback: bool = False  # if the newest checkpoint is corrupt, use an older one
    stop_after_steps: Optional[int] = knob(None, low=1)  # checkpoint and stop after this many steps (time-boxed jobs)
    log_every_n_steps: int = knob(10, low=1)
    device: str = knob(
        "auto", pattern=r"auto|cpu|cuda(:\d+)?|mps", meaning="auto, cpu, cuda, cuda:<index> or mps"
    )  # auto: cuda when available, else cpu
    progress_bar: bool = True  # shown only on rank 0 and when output is a terminal
    deepspeed: DeepSpeedConfig = field(default_factory=DeepSpeedConfig)


@dataclass
class SelectionConfig:
    """Which registered parts of a family run, by name."""

    names: list[str] = field(default_factory=list)


@dataclass
class AuditSelectionConfig(SelectionConfig):
    """The bias audits to run, and the policy that judges them."""

    policy: str = "default"  # a bundled policy (default, lenient) or a path to a policy YAML
    # the favourable label whose rate parity compares; default: the last of two (multi-class: none)
    positive_label: Optional[str] = None
    # probe templates: a domain's name or a file (one per line, {person}); default: data.probe_domain
    probes: Optional[str] = None


@dataclass
class MonitorSelectionConfig(SelectionConfig):
    """The drift monitors: what each run records as its reference, and how
    ``tunewright monitor`` judges a new batch against it."""

    reference_size: int = knob(1000, low=1)  # held-out examples kept as the reference (a seeded sample beyond this)
    window: int = knob(0, low=0)  # monitor a batch in consecutive windows of this many rows; 0: the whole batch
    min_rows: int = knob(30, low=1)  # fewer rows (in a batch, window or group): insufficient_data, no test
    significance: float = knob(
        0.05, low=0, high=1, low_open=True, high_open=True
    )  # p-value below which a descriptor or prediction shift is significant
    effect_size: float = knob(0.1, low=0)  # normalised Wasserstein distance a descriptor must also exceed to drift
    embedding_method: str = knob(
        "model", choices=("model", "mmd")
    )  # model: domain-classifier ROC AUC; mmd: maximum mean discrepancy
    embedding_threshold: Optional[float] = knob(
        None, low=0, low_open=True
    )  # default: 0.55 ROC AUC for model, 0.015 for mmd
    accuracy_drop: float = knob(
        0.05, low=0, high=1, low_open=True
    )  # a labelled batch whose accuracy falls this much below the reference drifts
    name: Optional[str] = None  # the report's name: reports/drift-<name>.json; default: from the data
    # when retraining is recommended, train a new run on the run's data plus this (labelled) batch
    retrain: bool = False


@dataclass
class CardConfig:
    """What the model card says that no record can."""

    intended_use: Optional[str] = None  # who should use the model, for what
    out_of_scope_use: Optional[str] = None  # uses it is not fit for
    license: Optional[str] = None  # the fine-tuned model's licence (an SPDX id); "other" when unset
    limitations: Optional[str] = None  # known limitations beyond those the card lists itself
    tags: list[str] = field(default_factory=list)


@dataclass
class PathsConfig:
    runs_dir: str = "runs"  # every run gets runs_dir/<run_id>/
    run_id: Optional[str] = None  # chosen automatically when null
    cache_dir: Optional[str] = "~/.cache/tunewright"  # tokenised splits reused across runs; null: no cache


@dataclass
class TrainConfig:
    """The whole composed config of ``tunewright train``."""

    model: Any = MISSING
    method: Any = MISSING
    data: Any = MISSING
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    audit: AuditSelectionConfig = field(default_factory=AuditSelectionConfig)
    monitor: MonitorSelectionConfig = field(default_factory=MonitorSelectionConfig)
    tracker: SelectionConfig = field(default_factory=SelectionConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    card: CardConfig = field(default_factory=CardConfig)
    seed: int = 42


@dataclass
class ServeLogConfig:
    """The traffic log: served requests appended to ``<run>/served/`` as JSON lines."""

    enabled: bool = True
    sample: float = knob(1.0, low=0, high=1)  # share of requests logged (1: every one)
    redact: bool = False  # mask e-mail addresses, phone and card numbers before writing
    shard_mb: int = knob(64, low=1)  # a shard is closed at this size and the next one begun
    # names this process's shards; give each replica behind a load balancer its own
    replica: str = knob("r0", pattern=r"[A-Za-z0-9_-]{1,40}", meaning="letters, digits, '_' or '-'")


@dataclass
class ServeMonitorConfig:
    """Live monitoring: served texts judged against the run's drift reference as they come."""

    # judge each run of this many served texts in the background (the run's own monitor
    # settings); 0: off. Below monitor.min_rows a window is insufficient_data.
    every_n: int = knob(0, low=0)
    # also judge what came since the last window every this many minutes, once it holds
    # monitor.min_rows texts (quiet services are watched too); 0: off
    every_minutes: float = knob(0.0, low=0)


@dataclass
class ServeConfig:
    """``tunewright serve``: where it listens, how it batches, what it refuses."""

    host: str = "127.0.0.1"  # 0.0.0.0 exposes the service to the network: put auth and TLS in front
    port: int = knob(8000, low=1, high=65535)
    max_batch_size: int = knob(32, low=1)  # inputs run through the model together
    # how long a batch waits for more inputs before it runs; 0: it takes what is queued
    # (under load, requests queue while a batch runs, so batches form without waiting)
    max_wait_ms: float = knob(0.0, low=0)
    max_queue: int = knob(512, low=1)  # inputs waiting at most; beyond: 503 with Retry-After
    max_inputs: int = knob(64, low=1)  # inputs in one request; more: 413
    max_text_chars: int = knob(20000, low=1)  # characters in one text input; more: 422
    max_body_kb: int = knob(8192, low=1)  # request body size; more: 413
    # when this environment variable is set, requests need "Authorization: Bearer <its value>"
    api_key_env: str = "TUNEWRIGHT_API_KEY"
    # adapter runs (LoRA, IA3, prompt) of one base load it once and switch adapters per
    # batch: memory for one base, not one per run, at the cost of computing with unmerged
    # adapters; false: each run its own merged copy
    share_base: bool = True
    log: ServeLogConfig = field(default_factory=ServeLogConfig)
    monitor: ServeMonitorConfig = field(default_factory=ServeMonitorConfig)


@dataclass
class ServiceConfig:
    """The whole composed config of ``tunewright serve``."""

    serve: ServeConfig = field(default_factory=ServeConfig)


@dataclass
class StudioConfig:
    """``tunewright studio``: where the web app listens and what it keeps."""

    host: str = "127.0.0.1"  # another address exposes the app to the network: studio.auth is then required
    port: int = knob(7860, low=1, high=65535)
    workspace: str = "studio"  # uploads, run folders (runs/) and command logs of the app live here
    max_upload_mb: float = knob(200.0, low=0, low_open=True)  # an upload (or an unpacked zip) larger is refused
    # ask for a password: user "tunewright", the password in $TUNEWRIGHT_STUDIO_PASSWORD
    # (never in the config or on the command line, where others could read it)
    auth: bool = False


@dataclass
class StudioAppConfig:
    """The whole composed config of ``tunewright studio``."""

    studio: StudioConfig = field(default_factory=StudioConfig)


@dataclass
class TuneConfig:
    """``tunewright tune``: how many trials, for how long, judged and pruned how."""

    trials: int = knob(20, low=0)  # trials to finish, pruned and failed ones included; 0: until tune.timeout
    # wall-clock budget: seconds, or a number with s, m or h (30m); no trial starts after it
    timeout: Optional[str] = knob(None, pattern=r"\d+(\.\d+)?[smh]?", meaning="seconds, or a number with s, m or h")
    study: Optional[str] = None  # a study folder to resume; null: a new <paths.runs_dir>/tune-<id>
    sampler: str = knob("tpe", choices=("tpe", "random"))  # tpe: learns from finished trials
    seed: int = 0
    # stops a trial whose validation metric lags the median of earlier trials at the same
    # step (median), or by successive halving (hyperband); one objective only
    pruner: str = knob("median", choices=("median", "hyperband", "none"))
    startup_trials: int = knob(3, low=0)  # trials before any is pruned, and the sampler's random start
    # what to optimise, each "<source>.<metric>:max|min": validation.<metric> (the best
    # evaluation's, as early stopping picked it) or audit.worst_limit_use (the bias audits'
    # check closest to its limit, 1 = at the limit); several give a Pareto front
    objectives: list[str] = field(default_factory=lambda: ["validation.accuracy:max"])
    constraint: str = knob("none", choices=("none", "release"))  # release: only trials whose release is allowed
    # name the recommended trial the study's result: its manifest says so (promoted_by), and
    # study.json's "promoted" names it
    promote: bool = False


@dataclass
class SearchConfig:
    """A search space: under ``params``, config keys nested as in the run config (trainer,
    method), each with how it is drawn: ``"float LOW HIGH [log] [step=S]"``,
    ``"int LOW HIGH [log] [step=S]"`` or ``"choice A B ..."``."""

    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class StudyConfig:
    """The whole composed config of ``tunewright tune`` besides the run's own."""

    tune: TuneConfig = field(default_factory=TuneConfig)
    search: SearchConfig = field(default_factory=SearchConfig)


# Config groups that are not plugin families, and the schema their options extend.
CORE_GROUP_SCHEMAS: dict[str, type] = {
    "trainer": TrainerConfig,
    "audit": AuditSelectionConfig,
    "monitor": MonitorSelectionConfig,
    "tracker": SelectionConfig,
    "paths": PathsConfig,
}


# Families whose config group picks exactly one part (``method=lora``). The audit,
# monitor and tracker groups instead list the parts to run in ``names``.
SINGLE_CHOICE_FAMILIES = ("models", "methods", "datasets")


def selection_schema(registry, base: type) -> type:
    """A list group's schema (``audit``, ``tracker``): ``base``'s keys (``names``, ...)
    plus one node per registered part holding that part's options
    (``audit.eec.path=...``, ``tracker.wandb.mode=offline``)."""
    fields = [
        (part.name, part.schema, field(default_factory=partial(part.schema, kind=part.name))) for part in registry
    ]
    return make_dataclass(f"{registry.family.capitalize()}SelectionConfig", fields, bases=(base,))


def part_options(selection, registry, name: str):
    """The options node of part ``name`` in a list group's config (``cfg.audit``), or the
    part's schema defaults where the config holds none (monitors, or an older run's
    config)."""
    node = selection.get(name)
    return node if node is not None else OmegaConf.structured(registry.get(name).schema(kind=name))


def group_schemas(registries) -> dict[str, type]:
    """Every core group's schema; the audit and tracker groups' include their parts' options."""
    return {
        **CORE_GROUP_SCHEMAS,
        "audit": selection_schema(registries["audits"], AuditSelectionConfig),
        "tracker": selection_schema(registries["trackers"], SelectionConfig),
    }


def store_schemas(registries, option_files: set[tuple[str, str]]) -> None:
    """Put every schema into Hydra's ConfigStore.

    For each group ``g`` and schema ``s`` this stores ``g/s_schema``, which option files
    name in their defaults list. A registered part ``p`` with no option file
    (``(g, p)`` not in ``option_files``) is also stored as the option ``g/p`` itself, so
    a plugin that ships no YAML is still selectable with ``g=p``.
    """
    cs = ConfigStore.instance()
    cs.store(name="train" + SCHEMA_SUFFIX, node=TrainConfig)
    cs.store(name="service" + SCHEMA_SUFFIX, node=ServiceConfig)
    cs.store(group="serve", name="serve" + SCHEMA_SUFFIX, node=ServeConfig)
    cs.store(name="study" + SCHEMA_SUFFIX, node=StudyConfig)
    cs.store(name="studio_app" + SCHEMA_SUFFIX, node=StudioAppConfig)
    cs.store(group="tune", name="tune" + SCHEMA_SUFFIX, node=TuneConfig)
    cs.store(group="search", name="search" + SCHEMA_SUFFIX, node=SearchConfig)
    for group, schema in group_schemas(registries).items():
        cs.store(group=group, name=group + SCHEMA_SUFFIX, node=schema)
    for family in SINGLE_CHOICE_FAMILIES:
        registry = registries[family]
        for part in registry:
            node = OmegaConf.structured(part.schema(kind=part.name))
            cs.store(group=registry.config_group, name=part.name + SCHEMA_SUFFIX, node=node)
            if (registry.config_group, part.name) not in option_files:
                cs.store(group=registry.config_group, name=part.name, node=node)
