"""join_path: a hub URL's base path and an OICP path joined by the one rule of the firmware, the
relay and the simulator (a shared part said once, never doubled)."""
from cpagent.uplink.http import join_path

OICP = "/api/oicp/charging/v21/operators/DE*ABC/authorize/start"


def test_no_base_is_the_path():
    assert join_path("", OICP) == OICP


def test_a_base_that_is_the_oicp_root_is_not_doubled():
    assert join_path("/api/oicp", OICP) == OICP
    assert join_path("/api", OICP) == OICP


def test_a_mount_before_the_oicp_root_is_kept_once():
    assert join_path("/hub", OICP) == "/hub" + OICP
    assert join_path("/hub/api/oicp", OICP) == "/hub" + OICP
    assert join_path("/a/b/api", OICP) == "/a/b" + OICP


def test_only_whole_segments_are_shared():
    # "/api/oic" is not a segment of the path: nothing shared, joined as given
    assert join_path("/api/oic", OICP) == "/api/oic" + OICP
    assert join_path("/xapi", OICP) == "/xapi" + OICP
