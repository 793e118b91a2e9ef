"""Every hook tunewright calls, in one place.

A plugin is any module or object with functions marked ``@tunewright.hookimpl`` whose
names match the specs below. Builtin features are plugins too (see
``tunewright.plugin_manager.BUILTIN_PLUGINS``); third-party packages arrive through the
entry-point group ``tunewright``.

Three kinds of hook:

* **Registration** hooks run once, when the plugin manager starts, on every rank. They
  receive a :class:`tunewright.registry.Registry` and add named, config-validated parts
  to it. A duplicate name is an error naming both plugins.
* **Lifecycle** hooks are fired by the pipeline and the trainer while a run goes on.
* **Governance** hooks carry audit verdicts, release decisions and drift reports.

``run`` arguments are :class:`tunewright.run.Run` objects: the resolved config, the run
folder and the rank/world size of the calling process.
"""

from __future__ import annotations

import pluggy

PROJECT_NAME = "tunewright"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


# --------------------------------------------------------------------------- registration


@hookspec
def tunewright_register_models(registry):
    """Add model parts (task families) to ``registry``.

    :param registry: the models :class:`~tunewright.registry.Registry`; call
        ``registry.add(name, factory, schema=..., description=...)``.
    :return: nothing; the registry records what was added and by which plugin.

    Called once per process, on every rank, when plugins are loaded.
    """


@hookspec
def tunewright_register_methods(registry):
    """Add tuning-method parts (full, LoRA, adapters, ...) to ``registry``.

    :param registry: the methods :class:`~tunewright.registry.Registry`.
    :return: nothing.

    Called once per process, on every rank, when plugins are loaded.
    """


@hookspec
def tunewright_register_datasets(registry):
    """Add dataset parts (domain packs and generic loaders) to ``registry``.

    :param registry: the datasets :class:`~tunewright.registry.Registry`.
    :return: nothing.

    Called once per process, on every rank, when plugins are loaded.
    """


@hookspec
def tunewright_register_audits(registry):
    """Add bias-audit parts to ``registry``.

    :param registry: the audits :class:`~tunewright.registry.Registry`.
    :return: nothing.

    Called once per process, on every rank, when plugins are loaded.
    """


@hookspec
def tunewright_register_monitors(registry):
    """Add drift-monitor parts to ``registry``.

    :param registry: the monitors :class:`~tunewright.registry.Registry`.
    :return: nothing.

    Called once per process, on every rank, when plugins are loaded.
    """


@hookspec
def tunewright_register_trackers(registry):
    """Add experiment-tracker parts to ``registry``.

    A tracker's factory returns an object whose lifecycle hook implementations are
    registered with the plugin manager for the length of one run.

    :param registry: the trackers :class:`~tunewright.registry.Registry`.
    :return: nothing.

    Called once per process, on every rank, when plugins are loaded.
    """


@hookspec
def tunewright_config_searchpath():
    """Name extra Hydra config folders this plugin ships.

    :return: a list of search-path entries such as ``["pkg://my_plugin.conf"]``; their
        group options (``method/my_method.yaml``) become choosable like builtin ones.

    Called once per process, on every rank, before the config is composed.
    """


# --------------------------------------------------------------------------- lifecycle


@hookspec
def tunewright_run_start(run):
    """A run has its config and run folder; nothing has been loaded yet.

    :param run: the :class:`~tunewright.run.Run`.
    :return: nothing.

    Called on every rank.
    """


@hookspec
def tunewright_train_step_end(run, step, metrics):
    """One optimizer step has finished.

    :param run: the :class:`~tunewright.run.Run`.
    :param step: the global optimizer step just completed, counting from 1.
    :param metrics: a dict of floats: ``loss``, ``learning_rate``, ``grad_norm``,
        ``tokens_per_second``, ``samples_per_second``, ``epoch``, and ``total_steps``
        (the steps the run will take in all).
    :return: nothing.

    Called on rank 0 only.
    """


@hookspec
def tunewright_eval_end(run, split, step, metrics):
    """An evaluation pass over one split has finished.

    :param run: the :class:`~tunewright.run.Run`.
    :param split: the split evaluated, ``"validation"`` or ``"test"``.
    :param step: the global optimizer step the evaluated weights come from.
    :param metrics: a dict of floats, for example ``loss``, ``accuracy``, ``f1_macro``.
    :return: nothing.

    Called on rank 0 only.
    """


@hookspec
def tunewright_checkpoint_saved(run, path, step):
    """A checkpoint has been written and atomically renamed into place.

    :param run: the :class:`~tunewright.run.Run`.
    :param path: the :class:`pathlib.Path` of the checkpoint folder.
    :param step: the global optimizer step it holds.
    :return: nothing.

    Called on rank 0 only.
    """


@hookspec
def tunewright_train_end(run, results):
    """Training and test evaluation are over and ``model/`` is saved.

    :param run: the :class:`~tunewright.run.Run`.
    :param results: the dict written to ``results.json``.
    :return: nothing.

    Called on rank 0 only.
    """


@hookspec
def tunewright_run_error(run, error):
    """The run failed; called before the exception propagates.

    :param run: the :class:`~tunewright.run.Run`.
    :param error: the exception instance.
    :return: nothing.

    Called on every rank that saw the error.
    """


# --------------------------------------------------------------------------- governance


@hookspec
def tunewright_audit_completed(run, results, base, decision):
    """The bias audits of a run have finished and its release is decided.

    :param run: the :class:`~tunewright.run.Run`.
    :param results: a dict of audit name to that audit's result, an
        :class:`~tunewright.governance.results.AuditResult` as a dict: its ``verdict``
        (``pass``, ``inconclusive``, ``fail`` or ``not_applicable``), ``checks``,
        ``groups`` and ``reasons``.
    :param base: the same audits on the pre-trained model, ``{"possible": True,
        "results": {...}}``, or ``{"possible": False, "reason": str}`` when its head does
        not predict the run's labels; ``None`` when no audit ran on it.
    :param decision: the release decision, as ``tunewright_release_decision`` gave it.
    :return: nothing. (The builtin ``tunewright.governance.bias_report`` writes
        ``reports/bias.{json,html}`` here.) An implementation may take any subset of
        the arguments.

    Called on rank 0 only, after ``tunewright_release_decision``.
    """


@hookspec(firstresult=True)
def tunewright_write_model_card(folder):
    """Describe the run in ``folder`` from its records (a model card).

    :param folder: the run folder's :class:`pathlib.Path`.
    :return: the path of the card written, or ``None`` to leave it to the next plugin;
        the first answer wins (the builtin ``tunewright.governance.model_card`` writes
        ``MODEL_CARD.md``). ``tunewright export`` copies it as the export's README.md.

    Called on rank 0 after training, after each ``tunewright monitor`` batch and
    retraining, by ``tunewright export`` and by ``tunewright card``.
    """


@hookspec(firstresult=True)
def tunewright_probe_templates(domain):
    """The counterfactual audit's probe sentences for ``domain``.

    :param domain: the run's ``audit.probes`` or ``data.probe_domain`` (``support``, say).
    :return: a sequence of templates, each with one ``{person}`` slot (24 or more give
        the audit its power), or ``None`` when this plugin has none for ``domain``.
        The first answer wins; the builtin sets answer last.
    """


@hookspec(firstresult=True)
def tunewright_release_decision(run, results):
    """Decide whether a run's model may be released.

    :param run: the :class:`~tunewright.run.Run`.
    :param results: the audit results, as given to ``tunewright_audit_completed``.
    :return: a dict ``{"allowed": bool, "reasons": [str, ...]}``, or ``None`` to leave
        the decision to the next plugin. The first non-``None`` answer wins.

    Called on rank 0 only.
    """


@hookspec
def tunewright_drift_detected(run, report):
    """A monitor found drift in new data against the run's reference profile.

    :param run: the :class:`~tunewright.run.Run` that was monitored.
    :param report: the drift report dict, with ``drift_detected``, ``severity`` and
        ``retrain_recommended``.
    :return: nothing.

    Called on rank 0 only.
    """


@hookspec
def tunewright_monitor_completed(run, report):
    """``tunewright monitor`` has judged a batch against the run's reference profile.

    :param run: the :class:`~tunewright.run.Run` that was monitored.
    :param report: the drift report dict (``status``, ``drift_detected``, ``severity``,
        ``retrain_recommended``, ``windows``), whatever its verdict.
    :return: nothing.

    Called on rank 0 only, for every batch; ``tunewright_drift_detected`` follows when
    the batch drifted.
    """
