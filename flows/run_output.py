"""Where a flow run writes: the setup every flow that takes ``--output`` shares.

A flow asks for its output in two steps, because the inputs must be checked before anything
else is read (a sweep's space file, the input digests of an ingest location):

1. :func:`requested_output` refuses credentials in the URIs and resolves ``--output`` under
   the output root;
2. :meth:`RequestedOutput.claim` locks the location, opens the run's MLflow run tagged with
   the Prefect flow run, and logs the inputs as parameters; it yields a :class:`ClaimedRun`,
   whose :meth:`ClaimedRun.publish` makes the staged outputs visible at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from prefect import get_run_logger
from prefect.runtime import flow_run

from catalog.datasets import Catalog
from infra.credentials import refuse_credentials
from infra.locks import claim_output
from infra.storage import OutputLocation, resolve_output
from infra.tracking import RunLogger


@dataclass(frozen=True)
class ClaimedRun:
    """A run that holds its output location.

    Attributes
    ----------
    run_id : str
        The MLflow run every stage logs to.
    location : OutputLocation
        Where the outputs are published.
    root : str
        Where the stages write: the location's staging directory, or the location itself for
        a run that writes in place.
    """

    run_id: str
    location: OutputLocation
    root: str

    def publish(self, summary: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """Write ``summary`` (the completion marker, so last), then publish the staged outputs.

        Parameters
        ----------
        summary : dict, optional
            Saved as the ``summary`` dataset; ``None`` when a stage has written it already.

        Returns
        -------
        dict or None
            ``summary``, so that a flow can end with ``return run.publish(summary)``.
        """
        if summary is not None:
            Catalog(self.root).save_json("summary", summary)
        self.location.publish(self.run_id)
        return summary


@dataclass(frozen=True)
class RequestedOutput:
    """A flow's inputs and requested output, checked but not yet claimed.

    Attributes
    ----------
    flow : str
        The flow's name: the Prefect tag ``shoal.flow`` and the default run name.
    inputs : Mapping[str, str]
        The input URIs by parameter name, logged as the run's parameters.
    location : OutputLocation or None
        The resolved ``--output``; ``None`` lets :func:`infra.locks.claim_output` choose.
    """

    flow: str
    inputs: Mapping[str, str]
    location: OutputLocation | None

    @contextmanager
    def claim(
        self,
        command: str | None = None,
        published: bool = True,
        params: Mapping[str, str] | None = None,
    ) -> Iterator[ClaimedRun]:
        """Lock the location and open the MLflow run for the duration of the flow.

        Parameters
        ----------
        command : str, optional
            The command key (:func:`infra.locks.command_key`) under which a rerun without
            ``--output`` takes back the location of an unfinished run.
        published : bool
            Whether the run builds its outputs in a staging directory and publishes them, or
            writes into the location itself.
        params : Mapping[str, str], optional
            More parameters to log beside the inputs and the output.

        Yields
        ------
        ClaimedRun
            The run, its location and the root the stages write to.
        """
        tags = {"prefect.flow_run_id": str(flow_run.get_id() or ""), "shoal.flow": self.flow}
        name = str(flow_run.get_name() or self.flow)
        with claim_output(self.location, name, tags, published, command) as (run_id, location):
            root = location.staging if published else location.uri
            RunLogger(run_id).params({**self.inputs, "output": location.uri, **dict(params or {})})
            get_run_logger().info(
                "%s run %s writes to %s (built in %s)", self.flow, run_id, location.uri, root
            )
            yield ClaimedRun(run_id, location, root)


def requested_output(
    flow: str,
    events: str,
    transactions: str,
    output: str | None,
    default: Callable[[], OutputLocation] | None = None,
) -> RequestedOutput:
    """Refuse credentials in the URIs, then resolve ``output`` under the output root.

    Parameters
    ----------
    flow : str
        The flow's name.
    events, transactions : str
        The input URIs.
    output : str or None
        The requested output location.
    default : callable, optional
        The location when ``output`` is ``None``; called only after the URIs were checked.
        Without it, :func:`infra.locks.claim_output` chooses.

    Returns
    -------
    RequestedOutput
        What :meth:`RequestedOutput.claim` needs.

    Raises
    ------
    infra.credentials.CredentialInParameter
        A URI carries a password or a token.
    infra.storage.OutputError
        ``output`` lies outside the output root.
    """
    refuse_credentials(events=events, transactions=transactions, output=output)
    if output is not None:
        location: OutputLocation | None = resolve_output(output)
    else:
        location = default() if default is not None else None
    return RequestedOutput(flow, {"events": events, "transactions": transactions}, location)
