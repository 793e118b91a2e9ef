"""tunewright: fine-tune pre-trained models on domain data, with governance built in.

The public Python API is small: :func:`load_run` reloads a finished run for prediction,
and :data:`hookimpl` marks a plugin's hook implementations.
"""

from tunewright.hookspecs import hookimpl

__version__ = "0.1.0"
__all__ = ["hookimpl", "load_run", "__version__"]


def load_run(folder):
    """Load the model of a finished run folder; returns a :class:`~tunewright.predictor.Predictor`."""
    from tunewright.predictor import load_run as _load_run

    return _load_run(folder)
