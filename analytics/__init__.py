"""SmartPark analytics: numba kernels, streaming state, KPI aggregation and the live KPI service."""

from analytics.aggregate import KPI_KEYS, compute_kpis
from analytics.devices import DeviceIndex, build_index
from analytics.service import AnalyticsService
from analytics.state import StateLimits, StreamState, day_start_ms

__all__ = [
    "KPI_KEYS", "AnalyticsService", "DeviceIndex", "StateLimits", "StreamState", "build_index", "compute_kpis",
    "day_start_ms",
]
