from __future__ import annotations

from typing import Any

import pytest

from alerts.config import ConfigError
from alerts.routing import Routing, parse_routing
from ioc.registry import Registry


def leader(ident: str, unit: str, level: int, **extra: Any) -> dict[str, Any]:
    return {"id": ident, "unit": unit, "level": level, "name": ident, "role": "r", **extra}


def test_the_sample_routing_names_leaders_for_every_unit(
    routing: Routing, registry: Registry
) -> None:
    for code in registry.communes:
        (chair,) = routing.at(f"commune:{code}", 2)
        assert chair.role.startswith("Chủ tịch UBND")
    for agency in registry.agencies.values():
        assert routing.at(f"agency:{agency.id}", 1), agency.id
        if agency.level == "province":
            (head,) = routing.at(f"agency:{agency.id}", 2)
            assert head.role == f"Giám đốc {agency.name}"
    assert routing.at("province", 1)[0].role.startswith("Chánh Văn phòng UBND thành phố")
    assert all(
        (x.email or "").endswith("@example.invalid")
        and (x.webhook is None or x.webhook.startswith("https://example.invalid/"))
        for x in routing.leaders.values()
    )


def test_a_step_goes_to_the_first_unit_with_a_leader_at_its_level(routing: Routing) -> None:
    commune_dossier = {"agency": "agency:ubnd-00166", "commune": "commune:00166"}
    department_dossier = {"agency": "agency:so-tu-phap-01"}
    found, fallback = routing.resolve(("commune", "agency"), 2, commune_dossier)
    assert [x.role for x in found] == ["Chủ tịch UBND phường Cầu Giấy"] and not fallback
    found, fallback = routing.resolve(("commune", "agency"), 2, department_dossier)
    assert [x.role for x in found] == ["Giám đốc Sở Tư pháp"] and not fallback
    found, _ = routing.resolve(("province",), 3, {})
    assert [x.role for x in found] == ["Chủ tịch UBND thành phố"]


def test_no_leader_at_the_level_falls_back_to_the_duty_office(routing: Routing) -> None:
    found, fallback = routing.resolve(("agency",), 7, {"agency": "agency:ubnd-00166"})
    assert fallback and [x.id for x in found] == ["vp-ubnd-01"]


def test_every_problem_is_reported_with_its_entry(registry: Registry) -> None:
    data = {
        "routing": {"fallback": "province", "fallbak": "x"},
        "leaders": [
            leader("a", "province", 1),
            leader("a", "district:001", 1),
            leader("b", "commune:99999", 0, email="nobody", webhook="http://x"),
            leader("c", "agency:ubnd-00166", 1, digest="yes", phone="0"),
            leader("d", "province", 2, webhook="https://[::1/hooks"),
            leader("e", "province", 2, webhook="https:///no-host"),
        ],
    }
    with pytest.raises(ConfigError) as err:
        parse_routing(data, "routing.toml", registry)
    assert err.value.problems == [
        "routing: unknown key 'fallbak' (known: fallback)",
        "leaders[1]: duplicate id 'a'",
        "leaders[1]: unit 'district:001' must be 'province' or <kind>:<key> with kind one of "
        "commune, agency, centre, area",
        "leaders[2]: unit 'commune:99999' is not in the province file",
        "leaders[2]: 'email' 'nobody' is not an address",
        "leaders[2]: 'webhook' must be an https:// URL with a host",
        "leaders[2]: 'level' must be a whole number >= 1",
        "leaders[3]: unknown key 'phone' (known: id, unit, level, name, role, email, webhook, "
        "digest)",
        "leaders[3]: 'digest' must be true or false",
        "leaders[4]: 'webhook' must be an https:// URL with a host",
        "leaders[5]: 'webhook' must be an https:// URL with a host",
    ]
    assert str(err.value).startswith("routing.toml: 11 problem(s)")


def test_the_fallback_needs_leaders() -> None:
    with pytest.raises(ConfigError) as err:
        parse_routing({"leaders": [leader("a", "commune:00166", 1)]})
    assert err.value.problems == ["routing.fallback: 'province' has no leaders under [[leaders]]"]


def test_websocket_reaches_every_leader_email_and_webhook_where_given() -> None:
    routing = parse_routing({"leaders": [leader("a", "province", 1, email="a@example.invalid")]})
    a = routing.leaders["a"]
    assert (a.address("websocket"), a.address("email"), a.address("webhook")) == (
        "a",
        "a@example.invalid",
        None,
    )
