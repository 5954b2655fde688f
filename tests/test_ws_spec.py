"""graphql-transport-ws conformance, checked with the protocol's reference client.

`graphql-ws` (the library that defines the protocol, pinned in tests/node) connects to a
live `serve --demo`: acknowledgement, subscribe → next → complete, pings both ways; raw
sockets (`ws`) for the misbehaviours a good client never commits, each of which must
close the socket with the protocol's code. See docs/live-updates.md.
"""

from __future__ import annotations

from tests.support import live


def test_graphql_transport_ws_with_the_reference_client(live_server):
    ws_url = live_server.graphql_url.replace("http://", "ws://", 1)
    report = live.run_node(
        "graphql-ws.mjs", ws_url, live_server.graphql_url, live_server.admin_token, timeout=60
    )
    assert report["acknowledged"] is True
    assert report["next"]["data"]["events"]["type"] == "customer.updated"
    assert report["subjectIsTheCustomer"] is True
    assert "errors" not in report["next"]
    assert report["completed"] is True
    # The client pings every 300 ms and the server answers; the server pings too.
    assert report["pongsReceived"] >= 1
    assert report["badCredentials"]["code"] == 4403
    assert report["beforeInit"]["code"] == 4401
    assert report["duplicateId"]["code"] == 4409
    assert report["secondInit"]["code"] == 4429
