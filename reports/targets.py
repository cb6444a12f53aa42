"""Park targets of the seed plan against what was reported and measured: output value, new-energy ratio, green park."""

from __future__ import annotations

from dataclasses import dataclass

from parkmodel.registry import NewEnergyTarget, OutputTarget, Park


@dataclass(frozen=True, slots=True)
class Progress:
    """One target against the figure of the period.

    Attributes:
        kind: `output` (10⁸ yuan), `new_energy` (ratio 0..1) or `green_park`.
        target_year: the year the target is due (end of year).
        target: the target figure (None for green park status).
        actual: the period's figure (None: not measured / not reported).
        ratio: actual ÷ target (None when either is missing).
        status: `achieved`, `on_track` (due later, not yet reached), `behind` (due this year, not reached),
            `missed` (due before the period's year, not reached), `no_data`.
        area: sub-area the target applies to ("" = whole park).
        source: where the target comes from.
        years_left: target year − the period's year.
    """

    kind: str
    target_year: int
    target: float | None
    actual: float | None
    ratio: float | None
    status: str
    area: str
    source: str
    years_left: int


def _status(actual: float | None, target: float | None, target_year: int, year: int) -> str:
    if actual is None or target is None:
        return "no_data"
    if actual >= target:
        return "achieved"
    if target_year > year:
        return "on_track"
    return "behind" if target_year == year else "missed"


def output_progress(targets: list[OutputTarget], output_yi_yuan: float | None, year: int) -> list[Progress]:
    """Each output-value target against the output reported for `year` (10⁸ yuan; None: nothing reported)."""
    out = []
    for t in sorted(targets, key=lambda t: t.year):
        ratio = output_yi_yuan / t.output_value_yi_yuan if output_yi_yuan is not None and t.output_value_yi_yuan else None
        out.append(Progress("output", t.year, t.output_value_yi_yuan, output_yi_yuan, ratio,
                            _status(output_yi_yuan, t.output_value_yi_yuan, t.year, year), "", t.source,
                            t.year - year))
    return out


def target_in_force(targets: list[OutputTarget], year: int) -> OutputTarget | None:
    """The output target an assessment of `year` measures against: the first due in or after it, else the last."""
    ordered = sorted(targets, key=lambda t: t.year)
    return next((t for t in ordered if t.year >= year), ordered[-1] if ordered else None)


def new_energy_progress(targets: list[NewEnergyTarget], ratio_of_area: dict[str, float | None], year: int
                        ) -> list[Progress]:
    """Each new-energy ratio target against the measured ratio of its area (key "" = whole park)."""
    out = []
    for t in sorted(targets, key=lambda t: t.year):
        actual = ratio_of_area.get(t.area, ratio_of_area.get(""))
        out.append(Progress("new_energy", t.year, t.ratio, actual, actual / t.ratio if actual is not None and t.ratio
                            else None, _status(actual, t.ratio, t.year, year), t.area, t.source, t.year - year))
    return out


def green_park_progress(park: Park, year: int) -> Progress | None:
    """The park's green-park status against its target year (None when it has neither)."""
    if not park.green_park and park.green_park_target_year is None:
        return None
    due = park.green_park_target_year or year
    status = _status(1.0 if park.green_park else 0.0, 1.0, due, year)
    return Progress("green_park", due, None, 1.0 if park.green_park else 0.0, None, status, "",
                    "鄂府发〔2022〕135号 三(二)2 (seed 000)", due - year)
