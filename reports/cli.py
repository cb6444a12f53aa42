"""`smartpark report`: an enterprise or park report for a month, a year or 12 months, as PDF, Excel or HTML."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from parkmodel.registry import RegistryError, load_registry
from smartpark.config import ConfigError, load_settings

app = typer.Typer(help="Energy and per-mu benefit reports (企业/园区能源与亩均效益报告).")


@app.command()
def report(
    output: Annotated[Path, typer.Option("-o", "--output", help="file to write")],
    enterprise: Annotated[str | None, typer.Option("--enterprise", help="enterprise id")] = None,
    park: Annotated[str | None, typer.Option("--park", help="park id")] = None,
    period: Annotated[str, typer.Option("--period", help="2026-10 (month), 2026 (year) or 2026-10/12m")] = "",
    fmt: Annotated[str, typer.Option("--format", help="pdf, xlsx or html")] = "pdf",
    lang: Annotated[str, typer.Option("--lang", help="zh (default) or en")] = "zh",
    config: Annotated[Path | None, typer.Option("--config", help="YAML config file (sections influx, ...)")] = None,
    factors: Annotated[Path | None, typer.Option("--factors", help="tce/CO2 factor YAML (default: shipped)")] = None,
    evaluation: Annotated[Path | None, typer.Option("--evaluation", help="evaluation YAML (default: shipped)")] = None,
    energy: Annotated[str, typer.Option("--energy", help="auto, stored or telemetry")] = "auto",
) -> None:
    """Write one report of an enterprise (--enterprise) or a park (--park) for --period to -o FILE."""
    from analytics.factors import load_factors
    from analytics.influx import InfluxError
    from reports.config import load_evaluation
    from reports.periods import PeriodError, parse_period
    from reports.render import RenderError
    from reports.service import generate

    if (enterprise is None) == (park is None):
        raise typer.BadParameter("give exactly one of --enterprise ID or --park ID", param_hint="--enterprise/--park")
    if fmt not in ("pdf", "xlsx", "html"):
        raise typer.BadParameter(f"{fmt!r}: expected pdf, xlsx or html", param_hint="--format")
    if lang not in ("zh", "en"):
        raise typer.BadParameter(f"{lang!r}: expected zh or en", param_hint="--lang")
    if energy not in ("auto", "stored", "telemetry"):
        raise typer.BadParameter(f"{energy!r}: expected auto, stored or telemetry", param_hint="--energy")
    try:
        the_period = parse_period(period)
    except PeriodError as exc:
        raise typer.BadParameter(str(exc), param_hint="--period") from None
    try:
        settings = load_settings(config)
        registry = load_registry(settings.registry)
        factor_set = load_factors(factors)
        scheme = load_evaluation(evaluation)
    except (ConfigError, RegistryError) as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    kind, ident = ("enterprise", enterprise) if enterprise is not None else ("park", park)
    assert ident is not None
    try:
        body = asyncio.run(generate(settings, registry, kind, ident, the_period, fmt, lang,  # type: ignore[arg-type]
                                    factors=factor_set, config=scheme, energy_mode=energy))
    except KeyError as exc:
        typer.echo(str(exc.args[0]), err=True)
        raise typer.Exit(2) from None
    except (InfluxError, RenderError, OSError) as exc:
        typer.echo(f"report failed: {exc}", err=True)
        raise typer.Exit(1) from None
    output.write_bytes(body)
    typer.echo(f"wrote {output} ({len(body):,} bytes)")
