"""Prefect's temporary API server, started before the pipeline's imports instead of after.

With no ``PREFECT_API_URL``, Prefect starts a temporary API server (a uvicorn subprocess) at a
process's first flow call. By then the CLI has imported the pipeline (PyTorch, Ray,
scikit-learn, MLflow: ~7 s here), and the server's own start (~3 s, ~11 s on a new home, whose
database it migrates) only begins. Started first, in a thread, the subprocess comes up while
those imports run. Figures: benchmarks/README.md ("Whole flow at scale").
"""

from __future__ import annotations

import threading
from collections.abc import Callable

__all__ = ["start_embedded_api"]


def start_embedded_api() -> Callable[[], None]:
    """Start Prefect's temporary API in the background when no API URL is set.

    Returns
    -------
    callable
        Waits until the server answers (re-raising its failure); call it before the first
        flow call, since Prefect counts its server as started once the process is spawned.
    """
    from prefect.settings import PREFECT_API_URL

    if PREFECT_API_URL.value():
        return lambda: None
    failures: list[BaseException] = []

    def start() -> None:
        from prefect.server.api.server import SubprocessASGIServer

        try:
            SubprocessASGIServer().start()  # the instance Prefect's client starts later
        except BaseException as err:  # handed to the caller's thread
            failures.append(err)

    thread = threading.Thread(target=start, name="prefect-api-start", daemon=True)
    thread.start()

    def wait() -> None:
        thread.join()
        if failures:
            raise failures[0]

    return wait
