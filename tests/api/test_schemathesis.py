"""Property-based requests generated from the OpenAPI spec (schemathesis, in-process ASGI transport) against
the real app wired to the real broker and influxd: no request, however odd, gets a server error (5xx)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.app import auth_store_path, create_app
from api.auth.store import AuthStore
from deploy.services import RunningService
from tests.api.conftest import api_settings, write_registry
from tests.api.scoped import scoped_registry

schemathesis = pytest.importorskip("schemathesis", reason="needs schemathesis (pip install schemathesis)")
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.python import asgi  # noqa: E402

EXAMPLES_PER_OPERATION = 30


@pytest.fixture
def stopped_portal() -> Iterator[None]:
    yield
    # The ASGI transport runs the app's lifespan on a portal thread of its own; end both with the test.
    asgi.shutdown_lifespans()
    asgi._shutdown()


def test_no_server_errors_for_generated_requests(broker: RunningService, influx_url: str, influx_db: str,
                                                 uid: str, tmp_path: Path, stopped_portal: None) -> None:
    s = api_settings(broker.host, broker.port, influx_url, influx_db, tmp_path / "var")
    registry = scoped_registry(uid)
    write_registry(registry, Path(s.registry))
    app = create_app(s, registry)
    store = AuthStore(auth_store_path(s))
    credentials = {role: store.create_key("schemathesis", role, f"a{uid}-e1" if role == "enterprise" else None)[1]
                   for role in ("admin", "operations", "enterprise", "emergency")}
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 25

    for operation in operations:
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(), role=st.sampled_from(sorted(credentials)))
        def check(case: schemathesis.Case, role: str) -> None:
            response = case.call(headers={"Authorization": f"Bearer {credentials[role]}"})
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path} {case.query} as {role}: "
                                f"{response.status_code} {response.text[:200]}")
            case.validate_response(response, checks=[not_a_server_error])

        check()
    assert not failures, "\n".join(failures[:20])
