"""``shoal``: the command line of data engineers and the demo.

A failure ends in one line on stderr and a documented exit code: 2 for rejected input or
parameters, 3 for a server that cannot be reached or refuses the credentials, 4 for a refused
output, 1 for anything else. Tracebacks stay in the Prefect run's log; ``--verbose`` also
prints them here.
"""

from __future__ import annotations

import functools
import importlib
import sys
import traceback
from collections.abc import Callable
from datetime import datetime
from enum import StrEnum
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from infra.console import quiet_terminal
from infra.credentials import CredentialInParameter
from infra.embedded_api import start_embedded_api
from infra.health import EngineUnreachable, check_engines
from infra.redact import redact
from infra.settings import configure_environment
from infra.storage import OutputError


def _iso_datetime(text: str) -> datetime:
    """ISO-8601, ``Z`` or an offset allowed; naive means UTC (the pipeline's convention)."""
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not an ISO-8601 date or time") from None


class Generator(StrEnum):
    """The synthetic worlds of ``flows.demo.GENERATORS``."""

    shop = "shop"
    marketplace = "marketplace"
    travel = "travel"


# Options shared by the commands that read a user's data.
EventsOption = Annotated[str, typer.Option(help="events file, directory or URI")]
TransactionsOption = Annotated[str, typer.Option(help="transactions file, directory or URI")]
ConfigOption = Annotated[
    Path | None,
    typer.Option(help="YAML of pipeline parameters", exists=True, dir_okay=False, readable=True),
]


def _date_option(help_text: str) -> Any:
    """Declare a typed ISO-8601 option: a bad value is a usage error naming it (exit 2)."""
    return typer.Option(help=help_text, parser=_iso_datetime, metavar="ISO-8601")


# Tracebacks are for --verbose; a pretty one would also print local variables such as URIs.
app = typer.Typer(
    add_completion=False,
    help="Find fraud rings in payment click-streams.",
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
)
console = Console()
_verbose = {"on": False}


def _show_version(requested: bool) -> None:
    if requested:
        try:
            typer.echo(f"shoal {version('shoal')}")
        except PackageNotFoundError:  # a checkout that was never installed
            typer.echo("shoal (not installed)")
        raise typer.Exit()


@app.callback()
def main(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="also print tracebacks and failed runs' logs")
    ] = False,
    show_version: Annotated[
        bool,
        typer.Option("--version", callback=_show_version, is_eager=True, help="print and exit"),
    ] = False,
) -> None:
    """Find fraud rings in payment click-streams."""
    _verbose["on"] = verbose


def _say_failure(label: str, err: BaseException) -> None:
    """One line on stderr, whatever the message holds (validation errors span lines)."""
    message = " ".join(redact(str(err)).split()) or type(err).__name__
    print(f"shoal: {label}: {message}", file=sys.stderr, flush=True)


def _failure(err: Exception) -> tuple[int, str]:
    """Return the documented exit code of an exception and the words that introduce it."""
    from pydantic import ValidationError

    from catalog.schemas import InputError

    if isinstance(err, InputError | CredentialInParameter):
        return 2, "input rejected"
    if isinstance(err, ValidationError):
        return 2, "bad parameters"
    if isinstance(err, OutputError):
        return 4, "output refused"
    if isinstance(err, EngineUnreachable):
        return 3, "cannot start"
    return 1, f"failed ({type(err).__name__}; the traceback is in the run's log, or use --verbose)"


P = ParamSpec("P")
R = TypeVar("R")


def _reports_failures(command: Callable[P, R]) -> Callable[P, R]:
    """Make a command end its failures in one line on stderr and their documented exit code."""

    @functools.wraps(command)
    def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except Exception as err:
            code, label = _failure(err)
            if _verbose["on"]:
                traceback.print_exception(err, file=sys.stderr)
            _say_failure(label, err)
            raise typer.Exit(code) from err

    return guarded


def _prepare(quiet: bool = True) -> None:
    """Engine settings first (Prefect reads them at import), then the servers must answer.

    ``quiet`` leaves a failed run's tracebacks to its log (the command reports the failure in
    one line); a long-lived server of flow runs passes False, its terminal being their log.
    """
    configure_environment()
    if quiet and not _verbose["on"]:
        quiet_terminal()
    check_engines()


def _flow(module: str, name: str) -> Callable[..., Any]:
    """Import a flow while Prefect's temporary API server starts beside the imports."""
    api_ready = start_embedded_api()
    flow = getattr(importlib.import_module(module), name)
    api_ready()
    return flow


def _params(config: Path | None) -> Any:
    from flows.params import PipelineParams

    return PipelineParams.from_yaml(config) if config else PipelineParams()


def _print_summary(summary: dict[str, Any]) -> None:
    counts = summary["ingest"]
    for source, c in counts.items():
        console.print(
            f"[bold]{source}[/]: {c['rows_in']:,} rows in = {c['accepted']:,} accepted"
            f" + {c['quarantined']:,} quarantined"
        )
    console.print(
        f"[bold]{summary['n_clusters']}[/] clusters over {summary['n_transactions']:,} "
        f"transactions ({100 * summary['noise_share']:.1f}% noise); "
        f"[bold red]{len(summary['risky_clusters'])}[/] risky"
    )
    table = Table("cluster", "size", "why risky", "rule", title="Risky clusters")
    for c in summary["risky_clusters"]:
        table.add_row(
            str(c["cluster"]), f"{c['size']:,}", c["basis"], " OR ".join(c["rules"]) or "-"
        )
    console.print(table)
    metrics = summary["metrics"]
    if "labels.fraud_caught" in metrics:
        caught, precision = metrics["labels.fraud_caught"], metrics["labels.risky_precision"]
        console.print(
            f"Labelled fraud inside risky clusters: [bold]{100 * caught:.1f}%[/]; "
            f"precision of the risky set (labelled): [bold]{100 * precision:.1f}%[/]"
        )
    console.print(f"Outputs: {summary['output']}  (report: {summary['output']}/report.html)")
    console.print(f"MLflow run: {summary['run_id']}  (browse with `make mlflow-ui`)")


@app.command()
@_reports_failures
def demo(
    transactions: Annotated[int, typer.Option(help="synthetic transactions")] = 50_000,
    seed: Annotated[int, typer.Option(help="generator seed")] = 0,
    config: ConfigOption = None,
    generator: Annotated[Generator, typer.Option(help="synthetic world")] = Generator.shop,
) -> None:
    """Generate a synthetic world with known fraud rings and run the whole flow on it."""
    _prepare()
    run_demo = _flow("flows.demo", "run_demo")

    summary, rings = run_demo(transactions, seed, _params(config), generator.value)
    _print_summary(summary)
    table = Table(
        "pattern",
        "transactions",
        "in risky clusters",
        "share of risky set",
        title="Planted patterns (truth is read only after the run)",
    )
    for row in rings.itertuples():
        table.add_row(
            str(row.pattern),
            f"{row.n:,}",
            f"{100 * row.recall:.1f}%",
            f"{100 * row.share_of_risky:.1f}%",
        )
    console.print(table)
    precision = rings.attrs.get("risky_precision")
    if precision is not None:
        console.print(
            f"Precision of the risky set against the truth: [bold]{100 * precision:.1f}%[/]"
        )


@app.command()
@_reports_failures
def run(
    events: EventsOption,
    transactions: TransactionsOption,
    output: Annotated[
        str | None,
        typer.Option(help="output location under SHOAL_OUTPUT_ROOT (default .shoal/runs/<id>)"),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Run the fraud-clustering flow on your own data."""
    _prepare()
    fraud_clustering = _flow("flows.fraud_clustering", "fraud_clustering")

    summary = fraud_clustering(events, transactions, output, _params(config))
    _print_summary(summary)


@app.command()
@_reports_failures
def ingest(
    events: EventsOption,
    transactions: TransactionsOption,
    output: Annotated[
        str | None, typer.Option(help="output location (default .shoal/ingest/<digests>)")
    ] = None,
    start: Annotated[
        datetime | None, _date_option("keep transactions at or after (naive = UTC)")
    ] = None,
    end: Annotated[datetime | None, _date_option("keep transactions before (naive = UTC)")] = None,
    config: ConfigOption = None,
) -> None:
    """Ingest alone: check the contract, quarantine bad rows, sessionize, version the outputs."""
    _prepare()
    ingest_flow = _flow("flows.ingest", "ingest_flow")

    window = {k: v for k, v in (("start", start), ("end", end)) if v is not None}
    base = _params(config).ingest
    params = type(base).model_validate({**base.model_dump(), **window})
    result = ingest_flow(events, transactions, output, params)
    for source, c in result["counts"].items():
        console.print(
            f"[bold]{source}[/]: {c['rows_in']:,} rows in = {c['accepted']:,} accepted"
            f" + {c['quarantined']:,} quarantined + {c['outside_window']:,} outside the window"
        )
    if result["reused"]:
        console.print("Inputs, parameters and code unchanged: [bold]reused[/] the cached outputs")
    console.print(f"Outputs: {result['output']}  (lineage: {result['output']}/lineage.json)")
    console.print(f"MLflow run: {result['run_id']}")


@app.command()
@_reports_failures
def retrain(
    events: EventsOption,
    transactions: TransactionsOption,
    window_hours: Annotated[float, typer.Option(help="length of the rolling window")] = 72.0,
    end: Annotated[
        datetime | None, _date_option("window end (default: latest transaction)")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Retrain on the latest window, compare with the champion, alert, gate the promotion."""
    _prepare()
    retrain_flow = _flow("flows.retrain", "retrain")

    result = retrain_flow(events, transactions, window_hours, end, params=_params(config))
    _print_summary(result)
    for a in result["alerts"]:
        console.print(f"[bold red]ALERT[/] new risky cluster {a['cluster']}: {a['why']}")
    decision = result["decision"]
    verdict = (
        "promoted" if decision["promoted"] else "kept out: " + "; ".join(decision["failed_gates"])
    )
    console.print(f"{decision['model']} v{decision['version']} {verdict}")


DeploymentOption = Annotated[
    list[str] | None, typer.Option("--deployment", "-d", help="only these (default: all)")
]


@app.command()
@_reports_failures
def deploy(
    pool: Annotated[str, typer.Option(help="process work pool (created if missing)")] = "shoal",
    deployment: DeploymentOption = None,
) -> None:
    """Register prefect.yaml's deployments with the Prefect API in PREFECT_API_URL."""
    _prepare()
    from infra.deployments import deploy as deploy_all

    ids = deploy_all(pool, deployment)
    console.print(
        f"{len(ids)} deployment(s) on pool '{pool}': start `prefect worker start --pool {pool}`"
    )


@app.command()
@_reports_failures
def serve(deployment: DeploymentOption = None) -> None:
    """Serve prefect.yaml's deployments from this process, schedules included (Ctrl-C stops)."""
    _prepare(quiet=False)
    from infra.deployments import serve as serve_all

    serve_all(deployment)


@app.command()
@_reports_failures
def sweep(
    events: EventsOption,
    transactions: TransactionsOption,
    space: Annotated[Path, typer.Option(help="YAML search space (see configs/sweep.yaml)")],
    output: Annotated[
        str | None, typer.Option(help="output location (default .shoal/runs/<id>)")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Tune stage parameters with Ray Tune; write the best as a --config YAML."""
    _prepare()
    import pandas as pd

    sweep_flow = _flow("flows.sweep", "sweep")

    result = sweep_flow(events, transactions, str(space), output, str(config) if config else None)
    trials = pd.read_parquet(result["results"])
    table = Table("rank", "score", "status", "child run", title="Sweep trials (best first)")
    for row in trials.itertuples():
        table.add_row(str(row.rank), f"{row.score:.4f}", row.status, row.run_id)
    console.print(table)
    console.print(f"Best configuration: {result['best_config']}  (shoal run --config it)")
    console.print(f"MLflow parent run: {result['run_id']}")


@app.command()
@_reports_failures
def score(
    events: EventsOption,
    transactions: TransactionsOption,
    output: Annotated[
        str | None, typer.Option(help="output location (default .shoal/runs/<id>)")
    ] = None,
    alias: Annotated[str, typer.Option(help="alias of the registered encoder")] = "champion",
) -> None:
    """Assign new transactions to the champion's clusters; list hits on risky clusters."""
    _prepare()
    import pandas as pd

    score_flow = _flow("flows.score", "score")

    try:
        result = score_flow(events, transactions, output, alias)
    except LookupError as err:
        _say_failure("no model to score with", err)
        raise typer.Exit(2) from err
    champion, metrics = result["champion"], result["metrics"]
    console.print(
        f"{int(metrics['score.rows']):,} transactions scored with {champion['name']} "
        f"v{champion['version']}: [bold red]{int(metrics['score.hits']):,}[/] on risky clusters"
    )
    hits = pd.read_parquet(f"{result['output']}/hits.parquet")
    table = Table("cluster", "hits", "rule", title="Hits by risky cluster")
    for cluster, group in hits.groupby("cluster"):
        table.add_row(str(cluster), f"{len(group):,}", group["rule_text"].iloc[0] or "-")
    console.print(table)
    console.print(f"Outputs: {result['output']}  (scores.parquet, hits.parquet)")
    console.print(f"MLflow run: {result['run_id']}")


if __name__ == "__main__":
    app()
