"""HTTP to other systems (services.outbound): post_within returns a prompt answer as it is, and cuts a
peer that trickles its answer at the deadline, whatever each read waits."""

import socket
import time

import pytest
import requests

from ledger.services.outbound import DeadlinePassed, post_within
from tests.helpers import trickling_peer


def test_a_prompt_answer_is_returned_as_the_peer_sent_it(httpserver):
    httpserver.expect_request("/hook", method="POST", data=b"ping").respond_with_data("pong", status=202)
    answer = post_within(httpserver.url_for("/hook"), deadline=5, data=b"ping", timeout=(1, 1))
    assert (answer.status_code, answer.text) == (202, "pong")


def test_a_peer_that_trickles_its_headers_is_cut_at_the_deadline():
    # A byte of header every 0.1 s for 2 s: no read waits the 0.5 s read timeout, so requests alone
    # would wait the whole 2 s.
    started = time.monotonic()
    with trickling_peer(pause=0.1, bytes_=20) as (port, cut):
        with pytest.raises(DeadlinePassed, match=r"no answer within 0\.5 s"):
            post_within(f"http://127.0.0.1:{port}/hook", deadline=0.5, data=b"x", timeout=(0.5, 0.5))
        elapsed = time.monotonic() - started
    assert elapsed < 1.9 and cut == [True]  # the trickle alone lasts 2 s


def test_a_refused_connection_is_a_connection_error_not_a_passed_deadline():
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()  # nothing listens there now
    with pytest.raises(requests.ConnectionError) as refused:
        post_within(f"http://127.0.0.1:{port}/hook", deadline=5, timeout=(1, 1))
    assert not isinstance(refused.value, DeadlinePassed)
