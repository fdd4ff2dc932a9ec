"""Production faults end to end: workers SIGKILLed under load, a broker restart, on a private node.

Each test runs the soak core (``bench/soak.py``) against real ``pivot-worker run`` processes and a
private RabbitMQ node (``bench/rabbit_node.py``) of this module's own: restarting it never touches
the shared broker the other tests use. The soak plays Kazoo's callflow side (Gregorian-microsecond
timestamps, ``pid://`` Controller-Queues, Kazoo's non-durable exchanges, publisher confirms) and
checks every request it sent: exactly one answer, no duplicate, no ``processing`` without its flow.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import aio_pika
import pytest
from aiormq.exceptions import ChannelNotFoundEntity

from bench.rabbit_node import RabbitNode, RabbitNodeError, rabbitmq_bin_dir
from bench.soak import SoakConfig, SoakReport, run_soak
from tests.conftest import IN_CI

pytestmark = pytest.mark.rabbit


@pytest.fixture(scope="module")
def rabbit_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitNode]:
    """A private RabbitMQ node for this module, always stopped and removed afterwards."""
    if rabbitmq_bin_dir() is None:
        message = "these tests start a private RabbitMQ node and need rabbitmq-server installed"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    node = RabbitNode(tmp_path_factory.mktemp("rabbit"))
    try:
        node.start()
        yield node
    finally:
        node.close()


async def _cluster_name(url: str) -> str:
    connection = await aio_pika.connect(url)
    async with connection:
        assert connection.transport is not None
        name = connection.transport.connection.server_properties["cluster_name"]
        return name.decode() if isinstance(name, bytes) else str(name)


def _explain(report: SoakReport) -> str:
    return "\n" + report.render()


async def test_private_node_is_separate_from_the_shared_broker(
    rabbit_node: RabbitNode, amqp_url: str
) -> None:
    shared_port = urlsplit(amqp_url).port or 5672
    assert rabbit_node.port != shared_port
    assert rabbit_node.node_name.startswith("pivot_t")
    status = await asyncio.to_thread(rabbit_node.ctl, "status")
    assert status.returncode == 0, status.stderr
    assert f"Node name: {rabbit_node.node_name}" in status.stdout
    assert f"port: {rabbit_node.port}, protocol: amqp" in status.stdout
    assert f"port: {shared_port}, protocol: amqp" not in status.stdout

    # Each port is answered by its own node.
    assert (await _cluster_name(rabbit_node.amqp_url)).startswith(rabbit_node.short_name + "@")
    assert not (await _cluster_name(amqp_url)).startswith(rabbit_node.short_name + "@")

    queue = f"pivot_node_check_{rabbit_node.short_name}"
    shared = await aio_pika.connect(amqp_url)  # must survive the private node's restart
    try:
        private = await aio_pika.connect(rabbit_node.amqp_url)
        async with private:
            channel = await private.channel()
            await channel.declare_queue(queue, durable=True)
            await channel.default_exchange.publish(
                aio_pika.Message(b"kept", delivery_mode=aio_pika.DeliveryMode.PERSISTENT), routing_key=queue
            )
        shared_channel = await shared.channel()
        with pytest.raises(ChannelNotFoundEntity):
            await shared_channel.declare_queue(queue, passive=True)

        took = await rabbit_node.arestart()
        assert took > 0

        # Same data directory: the durable queue and its persistent message survived the restart.
        private = await aio_pika.connect(rabbit_node.amqp_url)
        async with private:
            channel = await private.channel()
            survived = await channel.declare_queue(queue, passive=True)
            assert survived.declaration_result.message_count == 1
            await channel.queue_delete(queue)
        # The shared broker was not restarted: a connection opened before is still usable.
        assert not shared.is_closed
        probe = await (await shared.channel()).declare_queue("", exclusive=True)
        assert probe.name
    finally:
        await shared.close()


async def test_kill_workers_under_load(rabbit_node: RabbitNode, tmp_path: Path) -> None:
    """3 workers, ~100 req/s for 12 s, one SIGKILLed every 3 s right after its ``processing`` went out.

    What the ledger guarantees by construction, whatever the kill's timing: nothing lost, never a
    second ``processing``, never a ``processing`` without its ``CHANNEL_PIVOT``. A kill landing after
    the broker routed the victim's ``CHANNEL_PIVOT`` but before the victim recorded it can still
    produce a second one; ``bench/soak.py`` measures how often (README, "Exactly one answer").
    """
    config = SoakConfig(
        rate=100,
        seconds=12,
        workers=3,
        kill_every=3,
        kill_at="mid-reply",  # the worst moment: between the victim's first reply and its ack
        answer_delay_ms=50,  # a developer server's think time: every kill finds requests in flight
        drain_s=12,
        settle_s=1.5,
        seed=7,
        log_dir=tmp_path,
    )
    report = await run_soak(config, node=rabbit_node)
    print(report.render())
    assert report.kills >= 3, _explain(report)
    assert report.sent >= 0.9 * report.offered, _explain(report)
    assert report.lost == 0, _explain(report)
    assert report.duplicated_processing == 0, _explain(report)
    assert report.processing_without_flow == 0, _explain(report)


async def test_broker_restart_under_load(rabbit_node: RabbitNode, tmp_path: Path) -> None:
    """2 workers, steady load, the node restarted once: nothing lost, answers flow again after it.

    The work queue is a quorum queue: Kazoo publishes its requests transient, and a classic queue
    drops transient messages when its node restarts (the README's "Queue type and bounds").
    """
    config = SoakConfig(
        rate=50,
        seconds=8,
        workers=2,
        kill_every=0,
        broker_restart=True,
        restart_at=2.5,
        tail_after_restart=3.0,
        answer_delay_ms=100,  # requests are in flight when the broker goes away
        queue_type="quorum",
        drain_s=15,
        settle_s=1.5,
        log_dir=tmp_path,
    )
    report = await run_soak(config, node=rabbit_node)
    print(report.render())
    assert report.broker_restarts == 1, _explain(report)
    assert report.lost == 0, _explain(report)
    assert report.processing_without_flow == 0, _explain(report)
    (restart,) = report.recoveries
    assert restart.first_new_answer_s is not None, _explain(report)  # answers flow again after it
    assert restart.outstanding_unanswered == 0, _explain(report)
    assert report.kazoo_reconnects >= 1, _explain(report)


def test_private_node_refuses_a_port_another_broker_answers(
    rabbit_node: RabbitNode, amqp_url: str, tmp_path: Path
) -> None:
    """A node never starts on (or waits for) a port some other broker already answers."""
    other = RabbitNode(tmp_path)
    try:
        for port in (rabbit_node.port, urlsplit(amqp_url).port or 5672):
            other.port = port
            with pytest.raises(RabbitNodeError, match="already taken"):
                other.launch()
            assert not other.running()
    finally:
        other.close()
