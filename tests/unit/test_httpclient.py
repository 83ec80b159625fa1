"""The service-to-service HTTP client against a scripted server on a real socket: keep-alive,
framing, and the three failures a caller acts on differently."""

import asyncio
import contextlib
import socket

import pytest

from shared.httpclient import ConnectFailed, ConnectionLost, ServiceClient

OK = b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 12\r\n\r\n{"ok": true}'


class ScriptedServer:
    """Answers each request with the next scripted reply (bytes, or None for silence), and keeps
    what it received and how many connections it accepted."""

    def __init__(self, replies: list[bytes | None]) -> None:
        self.replies = replies
        self.requests: list[bytes] = []
        self.connections = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while self.replies:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    (int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")),
                    0,
                )
                self.requests.append(head + await reader.readexactly(length))
                reply = self.replies.pop(0)
                if reply is None:
                    await asyncio.sleep(30)
                writer.write(reply)
                await writer.drain()
                if b"connection: close" in reply.lower() or reply.endswith(b"(cut)"):
                    break
        writer.close()


def run_against(replies: list[bytes | None], scenario) -> ScriptedServer:
    server = ScriptedServer(replies)

    async def main() -> None:
        listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
        port = listener.sockets[0].getsockname()[1]
        client = ServiceClient(f"http://127.0.0.1:{port}")
        try:
            await scenario(client)
        finally:
            client.close()
            listener.close()

    asyncio.run(main())
    return server


async def get(client: ServiceClient, path: str = "/x", timeout: float = 2.0, **kwargs):
    return await client.request(
        "GET", path, headers=kwargs.get("headers", {}), body=kwargs.get("body"), timeout=timeout, connect_timeout=1.0
    )


def test_answers_are_read_and_one_connection_is_kept_alive_for_the_next_call():
    answers = []

    async def scenario(client):
        answers.append(await get(client, "/first", headers={"authorization": "Bearer t"}))
        answers.append(await client.request(
            "POST", "/second", headers={"content-type": "application/json"}, body=b'{"a": 1}', timeout=2, connect_timeout=1
        ))

    server = run_against([OK, OK], scenario)
    assert [(a.status_code, a.json(), a.headers["content-type"]) for a in answers] == [(200, {"ok": True}, "application/json")] * 2
    assert server.connections == 1
    first, second = server.requests
    assert first.startswith(b"GET /first HTTP/1.1\r\nhost: 127.0.0.1:") and b"authorization: Bearer t\r\n" in first
    assert second.startswith(b"POST /second HTTP/1.1\r\n") and b"content-length: 8\r\n" in second
    assert second.endswith(b'\r\n\r\n{"a": 1}')


def test_a_chunked_answer_is_reassembled():
    chunked = b"HTTP/1.1 409 Conflict\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    answers = []

    async def scenario(client):
        answers.append(await get(client))

    run_against([chunked], scenario)
    assert (answers[0].status_code, answers[0].content) == (409, b"hello world")


def test_a_connection_the_server_closes_is_not_reused():
    closing = b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok"

    async def scenario(client):
        await get(client)
        await asyncio.sleep(0.05)
        await get(client)

    assert run_against([closing, OK], scenario).connections == 2


def test_a_refused_connection_is_connect_failed():
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    async def scenario():
        await get(ServiceClient(f"http://127.0.0.1:{port}"))

    with pytest.raises(ConnectFailed):
        asyncio.run(scenario())


def test_a_silent_server_times_out_and_its_connection_is_dropped():
    outcomes = []

    async def scenario(client):
        with pytest.raises(TimeoutError):
            await get(client, timeout=0.2)
        outcomes.append(await get(client))  # a new connection, not the one with a late answer on it

    server = run_against([None, OK], scenario)
    assert outcomes[0].status_code == 200 and server.connections == 2


def test_a_connection_cut_mid_answer_is_connection_lost():
    cut = b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n(cut)"

    async def scenario(client):
        with pytest.raises(ConnectionLost):
            await get(client)

    run_against([cut], scenario)


def test_a_header_value_cannot_smuggle_a_line_break():
    async def scenario(client):
        with pytest.raises(ValueError, match="line break"):
            await get(client, headers={"x-request-id": "abc\r\nx-service-key: forged"})

    assert run_against([OK], scenario).requests == []


@pytest.mark.parametrize("url", ["https://wallet:8002", "wallet:8002", "http://wallet:8002/api"])
def test_only_plain_service_base_urls_are_accepted(url):
    with pytest.raises(ValueError):
        ServiceClient(url)
