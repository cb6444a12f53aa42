import httpx

from deploy.services import RunningService, port_answers


def test_broker_and_influx_answer(broker: RunningService, influx_url: str, influx_db: str) -> None:
    assert port_answers(broker.host, broker.port)
    r = httpx.post(f"{influx_url}/query", data={"q": "SHOW DATABASES"})
    assert influx_db in r.text
