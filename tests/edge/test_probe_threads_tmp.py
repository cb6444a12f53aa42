import aiomqtt
from deploy.services import RunningService

async def test_x(broker: RunningService) -> None:
    async with aiomqtt.Client(broker.host, broker.port) as c:
        await c.publish("x/y", b"1", qos=1)
    assert True
