"""Reports on the seed plan's own yardsticks: enterprise economic data, 亩均效益 evaluation, park targets and
ranking, and signed energy reports (HTML, PDF, Excel)."""

from reports.build import EnterpriseReport, ParkReport, enterprise_report, load_inputs, park_report
from reports.config import EvaluationConfig, default_evaluation, load_evaluation
from reports.economy import EconomicRecord, ImportProblems, Problem, load_records, validate_rows
from reports.evaluation import Evaluation, Subject, evaluate_enterprises, rank_parks, sum_economy
from reports.periods import Period, PeriodError, parse_period
from reports.render import render, render_html, render_xlsx
from reports.service import build_report, generate
from reports.store import EconomyStore, economy_path

__all__ = [
    "EconomicRecord", "EconomyStore", "EnterpriseReport", "Evaluation", "EvaluationConfig", "ImportProblems",
    "ParkReport", "Period", "PeriodError", "Problem", "Subject", "build_report", "default_evaluation",
    "economy_path", "enterprise_report", "evaluate_enterprises", "generate", "load_evaluation", "load_inputs",
    "load_records", "park_report", "parse_period", "rank_parks", "render", "render_html", "render_xlsx",
    "sum_economy", "validate_rows",
]
