"""Each load-test member connects from a loopback address of its own, or says why it cannot."""

import socket
import sys

from accord_app.lab.loadtest import connect_from, member_address, missing_member_addresses


def peer_of(source: str | None) -> str:
    """The address a server on 127.0.0.1 sees for a connection made from `source`."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        with connect_from("127.0.0.1", port, source, timeout=5):
            accepted, (address, _) = server.accept()
            accepted.close()
            return str(address)


def test_members_get_loopback_addresses_one_each() -> None:
    assert [member_address(slot) for slot in (0, 1, 253, 254)] == [
        "127.0.0.2",
        "127.0.0.3",
        "127.0.0.255",
        "127.0.1.0",
    ]


def test_a_connection_comes_from_the_members_address() -> None:
    if sys.platform == "linux":  # every address of 127.0.0.0/8 answers
        assert missing_member_addresses(40) is None
        assert peer_of(member_address(39)) == "127.0.0.41"
    else:  # macOS: only 127.0.0.1, unless aliases were added; the advice names them
        advice = missing_member_addresses(40)
        assert advice is None or "sudo ifconfig lo0 alias 127.0.0.$n up" in advice


def test_an_address_this_machine_lacks_falls_back_to_any() -> None:
    # 192.0.2.0/24 is for documentation: no machine has it.
    assert peer_of("192.0.2.1") == "127.0.0.1"
