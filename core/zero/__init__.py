"""DeepSpeed ZeRO for ``trainer.strategy=deepspeed``.

:mod:`tunewright.zero.config` turns a DeepSpeed JSON (a bundled one or the user's) into
the one DeepSpeed runs, filling ``"auto"`` from tunewright's config and refusing values
that contradict it; it imports nothing from DeepSpeed. :mod:`tunewright.zero.engine`
drives the engine itself: ``deepspeed.initialize``, checkpoints read back with
``torch.load(weights_only=True)``, and ZeRO-3's partitioned weights gathered for export.
"""
