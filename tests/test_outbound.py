"""HTTP to other systems (services.outbound): post_within returns a prompt answer as it is, and cuts a
peer that trickles its answer at the deadline, whatever each read waits."""

import socket
import threading
import time

import pytest
import requests

from ledger.services.outbound import DeadlinePassed, post_within


def test_a_prompt_answer_is_returned_as_the_peer_sent_it(httpserver):
    httpserver.expect_request("/hook", method="POST", data=b"ping").respond_with_data("pong", status=202)
    answer = post_within(httpserver.url_for("/hook"), deadline=5, data=b"ping", timeout=(1, 1))
    assert (answer.status_code, answer.text) == (202, "pong")


def test_a_peer_that_trickles_its_headers_is_cut_at_the_deadline():
    # A byte of header every 0.1 s for 2 s: no read waits the 0.5 s read timeout, so requests alone
    # would wait the whole 2 s.
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    cut = []

    def trickle() -> None:
        peer, _ = listener.accept()
        with peer:
            peer.recv(65536)
            try:
                peer.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                for _ in range(20):
                    time.sleep(0.1)
                    peer.sendall(b"a")
                peer.sendall(b"\r\nContent-Length: 0\r\n\r\n")
            except OSError:  # the deadline closed the connection
                cut.append(True)

    receiver = threading.Thread(target=trickle, daemon=True)
    receiver.start()
    started = time.monotonic()
    try:
        with pytest.raises(DeadlinePassed, match=r"no answer within 0\.5 s"):
            post_within(f"http://127.0.0.1:{port}/hook", deadline=0.5, data=b"x", timeout=(0.5, 0.5))
        elapsed = time.monotonic() - started
    finally:
        receiver.join(5)
        listener.close()
    assert elapsed < 1.9 and cut == [True]  # the trickle alone lasts 2 s


def test_a_refused_connection_is_a_connection_error_not_a_passed_deadline():
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()  # nothing listens there now
    with pytest.raises(requests.ConnectionError) as refused:
        post_within(f"http://127.0.0.1:{port}/hook", deadline=5, timeout=(1, 1))
    assert not isinstance(refused.value, DeadlinePassed)
