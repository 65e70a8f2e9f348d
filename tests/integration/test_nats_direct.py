"""Direct hand-over of a hot subscription's messages: the right messages skip nats-py's path, headers parse on
first use, and a client without the expected internals keeps nats-py's path untouched."""

from __future__ import annotations

import asyncio

import nats

from integration.nats_direct import RawMsg, deliver_direct, stop_direct


def test_raw_headers_parse_on_first_use_like_nats_py():
    raw = RawMsg(None, b"s", b"r", b"{}", b"NATS/1.0\r\nNats-Msg-Id: t-1\r\nX-Correlation-Id:c 1\r\n\r\n")
    assert raw.headers == {"Nats-Msg-Id": "t-1", "X-Correlation-Id": "c 1"}
    assert raw.headers is raw.headers  # parsed once
    assert RawMsg(None, b"s", b"", b"", None).headers is None
    assert (raw.subject, raw.reply, raw.data) == ("s", "r", b"{}")


def test_matching_messages_go_direct_others_keep_the_callback(broker):
    async def run() -> tuple[list[RawMsg], list[str], list[str]]:
        nc = await nats.connect(broker.url)
        direct: list[RawMsg] = []
        through_callback: list[str] = []

        async def cb(msg) -> None:
            through_callback.append(msg.reply)

        sub = await nc.subscribe("dd.>", cb=cb)
        assert deliver_direct(nc, sub, direct.append, b"direct.")
        await nc.publish("dd.a", b"1", reply="direct.1", headers={"Nats-Msg-Id": "x"})
        await nc.publish("dd.b", b"2", reply="other")
        await nc.flush()
        for _ in range(100):
            if direct and through_callback:
                break
            await asyncio.sleep(0.02)
        stop_direct(nc, sub)
        await nc.publish("dd.c", b"3", reply="direct.2")
        await nc.flush()
        for _ in range(100):
            if len(through_callback) == 2:
                break
            await asyncio.sleep(0.02)
        await nc.close()
        return direct, through_callback, [m.subject for m in direct]

    direct, through_callback, subjects = asyncio.run(run())
    assert subjects == ["dd.a"] and direct[0].data == b"1" and direct[0].headers == {"Nats-Msg-Id": "x"}
    assert through_callback == ["other", "direct.2"]  # after stop_direct: nats-py's path again


def test_a_client_without_the_internals_is_left_alone():
    class Sub:
        _id = 1

    class Client:  # no _process_msg
        pass

    client = Client()
    assert deliver_direct(client, Sub(), lambda m: None) is False
    assert not hasattr(client, "_process_msg")
