"""Dynamic batching: concurrent requests gathered into one forward pass.

Requests (each a list of inputs, and the :class:`Route` that answers them) wait in one
queue per loaded model. A worker thread takes the first, then more while the batch
holds fewer than ``max_batch_size`` inputs and less than ``max_wait_ms`` has passed,
and runs each route's share of the batch through its ``predict`` together (the
predictor orders them by length, as evaluation does), in the order they arrived;
each request gets its own answers. Runs that share one base model share one batcher,
so their requests take turns in arrival order and batches stay full. A full queue
refuses at once (:class:`Overloaded`), so a burst gets a quick 503 instead of piling
up; :meth:`Batcher.close` answers what is queued, then stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_STOP = object()


class Overloaded(Exception):
    """The queue holds ``max_queue`` inputs already."""


@dataclass(eq=False)
class Route:
    """Where requests go: ``predict(inputs) -> answers`` (one answer per input), and
    ``on_batch(size, depth)``, told each batch's size for this route and the queue depth
    after it was taken (the service's metrics)."""

    predict: Callable[[list[Any]], list[Any]]
    on_batch: Callable[[int, int], None] = lambda size, depth: None


@dataclass
class _Request:
    route: Route
    inputs: list[Any]
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop


class Batcher:
    """Runs batches of requests, each through its :class:`Route`."""

    def __init__(self, max_batch_size: int, max_wait_ms: float, max_queue: int):
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000
        self.max_queue = max_queue
        self._queue: queue.Queue = queue.Queue()
        self._waiting = 0  # inputs queued, not yet taken into a batch
        self._lock = threading.Lock()
        self._worker = threading.Thread(target=self._run, name="tunewright-batcher", daemon=True)
        self._worker.start()

    @property
    def depth(self) -> int:
        return self._waiting

    async def submit(self, route: Route, inputs: list[Any]) -> list[Any]:
        """The answers ``route`` gives ``inputs``, once their batch has run."""
        with self._lock:
            if self._waiting + len(inputs) > self.max_queue:
                raise Overloaded(f"{self._waiting} inputs are queued (serve.max_queue={self.max_queue})")
            self._waiting += len(inputs)
        loop = asyncio.get_running_loop()
        request = _Request(route, inputs, loop.create_future(), loop)
        self._queue.put(request)
        return await request.future

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch, size = [first], len(first.inputs)
            deadline = time.monotonic() + self.max_wait
            while size < self.max_batch_size:
                try:  # what is queued already joins at once; then wait up to max_wait_ms for more
                    remaining = deadline - time.monotonic()
                    request = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if request is _STOP:
                    self._queue.put(_STOP)  # answer this batch, then stop
                    break
                batch.append(request)
                size += len(request.inputs)
            with self._lock:
                self._waiting -= size
            shares: dict[Route, list[_Request]] = {}  # each route's requests, routes in arrival order
            for request in batch:
                shares.setdefault(request.route, []).append(request)
            for route, requests in shares.items():
                route.on_batch(sum(len(request.inputs) for request in requests), self._waiting)
                self._answer(route, requests)

    def _answer(self, route: Route, batch: list[_Request]) -> None:
        try:
            answers = route.predict([value for request in batch for value in request.inputs])
        except Exception as error:  # every request of the batch gets the error
            for request in batch:
                _deliver(request, None, error)
            return
        start = 0
        for request in batch:
            part = answers[start : start + len(request.inputs)]
            start += len(request.inputs)
            _deliver(request, part, None)

    def close(self) -> None:
        """Answer every queued request, then stop the worker."""
        self._queue.put(_STOP)
        self._worker.join()


def _deliver(request: _Request, result: Any, error: BaseException | None) -> None:
    """Hand a request its answers on its own event loop; one that has closed waits for none."""
    with contextlib.suppress(RuntimeError):  # the loop is closed: its caller is gone
        request.loop.call_soon_threadsafe(_settle, request.future, result, error)


def _settle(future: asyncio.Future, result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
