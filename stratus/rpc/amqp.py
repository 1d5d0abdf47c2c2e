"""RabbitMQ transport (AMQP 0-9-1 through aio-pika), with oslo.messaging's names and semantics.

Names, as oslo.messaging's rabbit driver lays them out:

- one topic exchange, ``[DEFAULT] control_exchange``; a listener on ``topic`` consumes the queue ``topic``
  (shared: the listeners of a topic take turns) and, with a ``server``, the queue ``topic.server``, each bound
  with its own name as the routing key;
- fanouts go to the fanout exchange ``topic_fanout``, from which every listener has its own exclusive queue
  ``topic_fanout_<uuid>``;
- replies come back on one exclusive queue per process, ``reply_<uuid>``; a call carries it as ``reply_to`` and
  its ``correlation_id`` (the message id), and expires in the broker after the call's timeout.

Guarantees: every publish waits for the broker's confirm and is ``mandatory`` (a message no queue takes comes
back and the caller is told, as the local transport says "no listener"). With ``[oslo_messaging_rabbit]
amqp_durable_queues`` (Stratus' default) the topic queues and exchange are durable and messages persistent,
so what the broker confirmed survives a broker restart. Consumers acknowledge a message after its handler
returned: a consumer that dies, or loses its connection, while handling leaves the message to be delivered
again (at least once; the handlers check the states they move from). The connection is aio-pika's robust one:
after a lost connection it reconnects by itself, to the next host of the ``transport_url`` in turn, and
declares its queues, bindings and consumers again; a publish meanwhile waits for it within its time budget,
and a call whose request or reply was lost ends in MessagingTimeout after ``rpc_response_timeout``.
Payloads: the method name and its keyword arguments as JSON (``encode``), as the local transport's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from typing import Any

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractRobustConnection,
    DeliveryMode,
    ExchangeType,
)
from aio_pika.exceptions import CONNECTION_EXCEPTIONS, DeliveryError
from oslo_config import cfg
from pamqp.commands import Basic
from yarl import URL

from stratus import exception
from stratus.rpc.transport import Transport, TransportError, decode, encode
from stratus.rpc.url import TransportURL

LOG = logging.getLogger(__name__)

VERSION = 1  # of the message body: {"v", "method", "kwargs"}; replies {"v", "result"} or {"v", "failure"}
STARTUP_ROUNDS = 3  # at start-up, rounds over every host before the broker counts as unreachable
CONNECT_TIMEOUT = 5.0  # seconds for one connection attempt to one host


class BrokerUnreachable(TransportError):
    """No host of the transport_url took a connection at start-up."""


class _FailoverConnection(aio_pika.RobustConnection):
    """aio-pika's robust connection over several brokers: every connection attempt after the first (a retry, or
    a reconnection after a loss) goes to the next URL in turn, so a dead broker is left for the next one."""

    def __init__(self, urls: list[str], **kwargs: Any) -> None:
        self._urls = [URL(u) for u in urls]
        self._index = 0
        self._attempts = -1  # Connection.__init__ sets transport = None too: not an attempt
        super().__init__(self._urls[0], **kwargs)

    @property  # type: ignore[override]
    def url(self) -> URL:
        return self._urls[self._index]

    @url.setter
    def url(self, value: URL) -> None:  # Connection.__init__, update_secret
        self._urls[self._index] = value

    @property  # type: ignore[override]
    def transport(self) -> Any:
        return self._transport

    @transport.setter
    def transport(self, value: Any) -> None:
        """aio-pika clears the transport as each connection attempt begins: the moment to move on."""
        if value is None:
            self._attempts += 1
            if self._attempts > 1:
                self._index = (self._index + 1) % len(self._urls)
        self._transport = value


class AmqpTransport(Transport):
    def __init__(self, url: TransportURL, conf: cfg.ConfigOpts) -> None:
        self.url = url
        self.timeout = float(conf.rpc_response_timeout)
        self.exchange_name = conf.control_exchange
        rabbit = conf.oslo_messaging_rabbit
        self.durable = rabbit.amqp_durable_queues
        self.retry_interval = rabbit.rabbit_retry_interval
        self.heartbeat = rabbit.heartbeat_timeout_threshold
        self.prefetch = rabbit.rabbit_qos_prefetch_count
        self.reply_queue = f"reply_{uuid.uuid4().hex}"
        self._connection: AbstractRobustConnection | None = None
        self._publish_channel: AbstractChannel | None = None
        self._consume_channel: AbstractChannel | None = None
        self._exchanges: dict[str, AbstractExchange] = {}  # by name, on the publishing channel
        self._replies: dict[str, asyncio.Future[Any]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._reply_listening = False

    # -- connection ------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect to the first host that answers (rounds over all of them, ``rabbit_retry_interval`` apart);
        BrokerUnreachable when none did in ``STARTUP_ROUNDS`` rounds."""
        errors: list[str] = []
        for round_ in range(STARTUP_ROUNDS):
            for index, host in enumerate(self.url.hosts):
                try:
                    await self._open(index)
                    return
                except (*CONNECTION_EXCEPTIONS, TimeoutError) as exc:
                    errors.append(f"{host}: {_reason(exc)}")
                    await self._close()
            if round_ < STARTUP_ROUNDS - 1:
                await asyncio.sleep(self.retry_interval)
        raise BrokerUnreachable(f"transport_url {self.url}: no broker answered after {STARTUP_ROUNDS} rounds "
                                f"({'; '.join(dict.fromkeys(errors))})")

    async def _open(self, host_index: int) -> None:
        hosts = [*self.url.hosts[host_index:], *self.url.hosts[:host_index]]
        query = f"heartbeat={self.heartbeat}"
        self._connection = connection = _FailoverConnection(
            [h.amqp_url(self.url.virtual_host, query) for h in hosts], reconnect_interval=self.retry_interval)
        await connection.connect(timeout=CONNECT_TIMEOUT)  # fails fast: the first attempt's error is raised
        self._publish_channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        self._consume_channel = channel = await connection.channel()
        if self.prefetch:
            await channel.set_qos(prefetch_count=self.prefetch)
        await self._exchange(self.exchange_name, ExchangeType.TOPIC)
        LOG.info("messaging on %s (exchange %s, durable queues %s)", connection, self.exchange_name, self.durable)

    async def _close(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):
                await self._connection.close()
        self._connection = self._publish_channel = self._consume_channel = None
        self._exchanges.clear()
        self._reply_listening = False

    def _ready(self) -> tuple[AbstractRobustConnection, AbstractChannel, AbstractChannel]:
        if self._connection is None or self._publish_channel is None or self._consume_channel is None:
            raise RuntimeError("the AMQP transport is not started")
        return self._connection, self._publish_channel, self._consume_channel

    async def _exchange(self, name: str, kind: ExchangeType) -> AbstractExchange:
        exchange = self._exchanges.get(name)
        if exchange is None:
            _, publish, _ = self._ready()
            durable = self.durable and kind is ExchangeType.TOPIC
            exchange = await publish.declare_exchange(name, kind, durable=durable)
            self._exchanges[name] = exchange
        return exchange

    # -- listening -------------------------------------------------------------------------------------------

    async def listen(self, topic: str, endpoint: object, server: str | None = None) -> None:
        _, _, channel = self._ready()
        exchange = await channel.declare_exchange(self.exchange_name, ExchangeType.TOPIC, durable=self.durable)
        names = [topic] if server is None else [topic, f"{topic}.{server}"]
        for name in names:
            queue = await channel.declare_queue(name, durable=self.durable)
            await queue.bind(exchange, routing_key=name)
            await queue.consume(lambda m, e=endpoint, t=name: self._deliver(e, t, m))
        fanout = await channel.declare_exchange(f"{topic}_fanout", ExchangeType.FANOUT)
        queue = await channel.declare_queue(f"{topic}_fanout_{uuid.uuid4().hex}", exclusive=True, auto_delete=True)
        await queue.bind(fanout)
        await queue.consume(lambda m, e=endpoint, t=f"{topic}_fanout": self._deliver(e, t, m))

    async def _deliver(self, endpoint: object, queue: str, message: AbstractIncomingMessage) -> None:
        """Hand the message to a task of its own, so a long handler does not hold up the queue's next ones."""
        task = asyncio.get_running_loop().create_task(self._handle(endpoint, queue, message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, endpoint: object, queue: str, message: AbstractIncomingMessage) -> None:
        method = "?"
        try:
            body = decode(message.body)
            method = body["method"]
            result: dict[str, Any] = {"v": VERSION, "result": await _invoke(endpoint, method, body["kwargs"])}
        except Exception as exc:
            if not message.reply_to:
                LOG.error("cast %s.%s failed", queue, method, exc_info=exc)
            result = {"v": VERSION, "failure": _failure(exc)}
        if message.reply_to:
            await self._reply(message, result)
        try:
            await message.ack()
        except CONNECTION_EXCEPTIONS as exc:  # the channel went away: the broker delivers it again
            LOG.warning("could not acknowledge %s.%s (%s): it will be delivered again", queue, method, _reason(exc))

    async def _reply(self, message: AbstractIncomingMessage, result: dict[str, Any]) -> None:
        _, publish, _ = self._ready()
        try:
            body = encode(result)
        except TypeError as exc:
            body = encode({"v": VERSION, "failure": _failure(exc)})
        reply = aio_pika.Message(body, content_type="application/json", correlation_id=message.correlation_id)
        try:
            await publish.default_exchange.publish(reply, routing_key=str(message.reply_to), mandatory=False,
                                                   timeout=self.timeout)
        except (*CONNECTION_EXCEPTIONS, TimeoutError) as exc:  # the caller times out
            LOG.warning("reply to %s lost: %s", message.reply_to, _reason(exc))

    async def _listen_replies(self) -> None:
        if self._reply_listening:
            return
        _, _, channel = self._ready()
        queue = await channel.declare_queue(self.reply_queue, exclusive=True, auto_delete=True)
        await queue.consume(self._on_reply, no_ack=True)
        self._reply_listening = True

    async def _on_reply(self, message: AbstractIncomingMessage) -> None:
        future = self._replies.pop(message.correlation_id or "", None)
        if future is None or future.done():
            return  # the call timed out already
        try:
            future.set_result(decode(message.body))
        except Exception as exc:  # a reply that is not ours to read
            future.set_exception(exc)

    # -- sending ---------------------------------------------------------------------------------------------

    async def _publish(self, exchange_name: str, kind: ExchangeType, routing_key: str, message: aio_pika.Message,
                       deadline: float, what: tuple[str, str], mandatory: bool = True) -> None:
        """Publish and wait for the broker's confirm; while the connection is down, wait for it to come back
        (until ``deadline``). A message no queue takes raises MessagingTimeout, "no listener"."""
        connection, _, _ = self._ready()
        method, target = what
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise exception.MessagingTimeout(method=method, topic=f"{target} (broker unreachable)")
            try:
                if not connection.connected.is_set():
                    await asyncio.wait_for(connection.connected.wait(), remaining)
                exchange = await self._exchange(exchange_name, kind)
                await exchange.publish(message, routing_key=routing_key, mandatory=mandatory,
                                       timeout=max(0.1, deadline - time.monotonic()))
                return
            except DeliveryError as exc:
                if isinstance(exc.frame, Basic.Return):
                    raise exception.MessagingTimeout(method=method, topic=f"{target} (no listener)") from None
                LOG.warning("publish of %s to %s refused (%s); retrying", method, target, _reason(exc))
            except (*CONNECTION_EXCEPTIONS, TimeoutError) as exc:
                LOG.warning("publish of %s to %s failed (%s); retrying", method, target, _reason(exc))
                self._exchanges.pop(exchange_name, None)
            await asyncio.sleep(min(self.retry_interval, max(0.0, deadline - time.monotonic())))

    def _message(self, method: str, kwargs: dict[str, Any], **properties: Any) -> aio_pika.Message:
        return aio_pika.Message(encode({"v": VERSION, "method": method, "kwargs": kwargs}),
                                content_type="application/json", message_id=uuid.uuid4().hex,
                                delivery_mode=DeliveryMode.PERSISTENT if self.durable else DeliveryMode.NOT_PERSISTENT,
                                **properties)

    async def call(self, topic: str, method: str, context: dict[str, Any], *, server: str | None = None,
                   timeout: float | None = None, **kwargs: Any) -> Any:
        timeout = timeout or self.timeout
        deadline = time.monotonic() + timeout
        await self._listen_replies()
        msg_id = uuid.uuid4().hex
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._replies[msg_id] = future
        target = topic if server is None else f"{topic}.{server}"
        message = self._message(method, {"context": context, **kwargs}, reply_to=self.reply_queue,
                                correlation_id=msg_id, expiration=timeout)
        try:
            await self._publish(self.exchange_name, ExchangeType.TOPIC, target, message, deadline, (method, target))
            reply = await asyncio.wait_for(future, max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            raise exception.MessagingTimeout(method=method, topic=target) from None
        finally:
            self._replies.pop(msg_id, None)
        if "failure" in reply:
            raise exception.from_payload(reply["failure"])
        return reply.get("result")

    async def cast(self, topic: str, method: str, context: dict[str, Any], *, server: str | None = None,
                   **kwargs: Any) -> None:
        target = topic if server is None else f"{topic}.{server}"
        await self._publish(self.exchange_name, ExchangeType.TOPIC, target,
                            self._message(method, {"context": context, **kwargs}),
                            time.monotonic() + self.timeout, (method, target))

    async def fanout(self, topic: str, method: str, context: dict[str, Any], **kwargs: Any) -> None:
        message = self._message(method, {"context": context, **kwargs})
        message.delivery_mode = DeliveryMode.NOT_PERSISTENT  # fanout queues are never durable
        # no listener at all is fine for a fanout, as in-process: not mandatory
        await self._publish(f"{topic}_fanout", ExchangeType.FANOUT, "", message, time.monotonic() + self.timeout,
                            (method, f"{topic}_fanout"), mandatory=False)

    async def stop(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        for future in self._replies.values():
            future.cancel()
        await self._close()


async def _invoke(endpoint: object, method: str, kwargs: dict[str, Any]) -> Any:
    if method.startswith("_"):
        raise exception.RemoteError(exc_type="NoSuchMethod", value=method)
    func = getattr(endpoint, method, None)
    if func is None:
        raise exception.RemoteError(exc_type="NoSuchMethod", value=method)
    return await func(**kwargs)


def _failure(exc: BaseException) -> dict[str, Any]:
    """The exception as the caller rebuilds it (``exception.from_payload``), as in-process."""
    if isinstance(exc, exception.StratusException):
        return exc.to_payload()
    return {"exc_type": type(exc).__name__, "message": str(exc)}


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return " ".join(text.split())[:200]
