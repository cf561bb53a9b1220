"""The province registry: the sample province, and validation with every
problem reported at once."""

from __future__ import annotations

import copy
from datetime import date, time
from pathlib import Path
from typing import Any

import pytest

from ioc import registry as registry_module
from ioc.registry import (
    AGENCY_LEVELS,
    COMMUNE_LEVELS,
    Registry,
    RegistryError,
    load_registry,
    parse_registry,
)

SAMPLE = Path(registry_module.__file__).parent / "data" / "province-01-ha-noi.toml"
REG = load_registry(SAMPLE)


# -- the sample province -----------------------------------------------------------


def test_sample_province_header() -> None:
    assert REG.province_code == "01"
    assert REG.province_name == "Thành phố Hà Nội"


def test_sample_province_has_16_communes_with_5_digit_codes() -> None:
    assert len(REG.communes) == 16
    for code, commune in REG.communes.items():
        assert commune.code == code
        assert len(code) == 5 and code.isdigit()
        assert commune.level in COMMUNE_LEVELS
        assert commune.valid_from == date(2025, 7, 1)
    assert REG.communes["00166"].name == "Phường Cầu Giấy"
    assert REG.communes["09877"].level == "xa"


def test_sample_groups_map_communes_to_legacy_districts() -> None:
    assert len(REG.groups) == 6
    assert REG.groups["cu-cau-giay"].communes == ("00160", "00166", "00175")
    assert REG.groups["cu-cau-giay"].kind == "legacy_district"
    assert REG.groups["cu-cau-giay"].valid_to == date(2025, 6, 30)
    assert REG.groups_of_commune["00166"] == ("cu-cau-giay",)
    assert REG.groups_of_commune["09877"] == ("cu-hoai-duc",)
    # every listed commune is in exactly one legacy district
    assert set(REG.groups_of_commune) == set(REG.communes)
    assert all(len(groups) == 1 for groups in REG.groups_of_commune.values())


def test_sample_centres_agencies_procedures_and_areas() -> None:
    assert REG.centres["hcc-01-cn1"].parent == "hcc-01"
    assert REG.centres["hcc-00166"].commune == "00166"
    assert REG.agencies["ubnd-00166"].commune == "00166"
    assert REG.agencies["cong-an-01"].level == "vertical"
    birth = REG.procedures["1.000001"]
    assert (birth.field, birth.allotted_working_hours, birth.allotted_working_days) == (
        "ho-tich",
        8,
        None,
    )
    assert birth.receipt_cutoff == time(15, 0)
    assert birth.agency_level == "commune"
    assert REG.procedures["3.000001"].agency_level == "province"  # the default
    assert REG.procedures["3.000001"].fee_required is True
    assert REG.procedures["6.000001"].fee_required is False
    assert REG.areas["tram-long-bien"].communes == ("00145", "00097")
    for proc in REG.procedures.values():
        assert proc.field in REG.fields
        assert (proc.allotted_working_days is None) != (proc.allotted_working_hours is None)


@pytest.mark.parametrize(
    ("scope", "label"),
    [
        ("province", "Thành phố Hà Nội"),
        ("commune:00166", "Phường Cầu Giấy"),
        ("agency:so-tu-phap-01", "Sở Tư pháp"),
        ("centre:hcc-01", "Trung tâm Phục vụ hành chính công thành phố Hà Nội"),
        ("procedure:1.000001", "Đăng ký khai sinh"),
        ("field:ho-tich", "Hộ tịch"),
        ("group:cu-cau-giay", "Quận Cầu Giấy (cũ)"),
        ("commune:99999", "99999"),  # unknown: its code
        ("field:unknown", "unknown"),
        ("agency:nobody", "nobody"),
    ],
)
def test_label(scope: str, label: str) -> None:
    assert REG.label(scope) == label


@pytest.mark.parametrize(
    ("kind", "key", "known"),
    [
        ("commune", "00166", True),
        ("commune", "99999", False),
        ("agency", "ubnd-00166", True),
        ("agency", "ubnd-99999", False),
        ("centre", "hcc-01-cn3", True),
        ("centre", "hcc-01-cn9", False),
        ("procedure", "1.000001", True),
        ("procedure", "0.000000", False),
        ("field", "ho-tich", True),
        ("field", "thue", False),
        ("group", "cu-ba-dinh", True),
        ("group", "cu-thanh-xuan", False),
    ],
)
def test_knows(kind: str, key: str, known: bool) -> None:
    assert REG.knows(kind, key) is known


def test_cutoff_seconds() -> None:
    assert REG.cutoff_seconds("1.000001") == 15 * 3600
    assert REG.cutoff_seconds("2.000002") == 15 * 3600
    assert REG.cutoff_seconds("1.000005") is None  # no cut-off
    assert REG.cutoff_seconds("0.000000") is None  # unknown procedure


def test_cutoff_seconds_counts_minutes_and_seconds() -> None:
    data = minimal()
    data["procedures"][0]["receipt_cutoff"] = time(16, 30, 15)
    assert parse_registry(data).cutoff_seconds("p1") == 16 * 3600 + 30 * 60 + 15


# -- validation ------------------------------------------------------------------------


def minimal() -> dict[str, Any]:
    """A small valid province, to break one way or another."""
    return copy.deepcopy(
        {
            "province": {"code": "01", "name": "Thành phố Hà Nội"},
            "communes": [
                {"code": "00166", "name": "Phường Cầu Giấy", "level": "phuong"},
                {"code": "09877", "name": "Xã An Khánh", "level": "xa"},
            ],
            "centres": [
                {"id": "hcc-01", "name": "Trung tâm", "level": "province"},
                {"id": "hcc-01-cn1", "name": "Chi nhánh 1", "level": "branch", "parent": "hcc-01"},
            ],
            "agencies": [
                {"id": "so-tu-phap-01", "name": "Sở Tư pháp", "level": "province"},
                {"id": "ubnd-00166", "name": "UBND", "level": "commune", "commune": "00166"},
            ],
            "fields": [{"id": "ho-tich", "name": "Hộ tịch"}],
            "procedures": [
                {"code": "p1", "name": "Khai sinh", "field": "ho-tich", "allotted_working_hours": 8}
            ],
            "groups": [{"id": "cu-cau-giay", "name": "Quận Cầu Giấy (cũ)", "communes": ["00166"]}],
        }
    )


def problems_of(data: dict[str, Any]) -> list[str]:
    with pytest.raises(RegistryError) as info:
        parse_registry(data, "prov.toml")
    err = info.value
    assert err.source == "prov.toml"
    assert str(err).splitlines()[0] == f"prov.toml: {len(err.problems)} problem(s):"
    return err.problems


def test_minimal_province_parses() -> None:
    reg = parse_registry(minimal())
    assert isinstance(reg, Registry)
    assert set(reg.communes) == {"00166", "09877"}
    assert reg.groups_of_commune == {"00166": ("cu-cau-giay",)}


def test_every_problem_is_reported_at_once() -> None:
    data = minimal()
    data["province"]["code"] = "1"
    data["communes"].append({"code": "0166", "name": "x", "level": "ward"})
    data["communes"].append({"code": "00166", "name": "again", "level": "phuong"})
    data["centres"].append({"id": "hcc-x", "name": "X", "level": "branch", "parent": "hcc-99"})
    data["agencies"].append(
        {"id": "ubnd-99999", "name": "Y", "level": "commune", "commune": "99999"}
    )
    data["agencies"].append({"id": "huyen", "name": "Z", "level": "district"})
    data["procedures"].append(
        {"code": "p2", "name": "P", "field": "thue", "allotted_working_days": 3}
    )
    data["procedures"].append(
        {
            "code": "p3",
            "name": "P",
            "field": "ho-tich",
            "allotted_working_days": 3,
            "allotted_working_hours": 8,
        }
    )
    data["procedures"].append({"code": "p4", "name": "P", "field": "ho-tich"})
    data["groups"].append({"id": "cu-x", "name": "G", "communes": ["00166", "99999"]})
    assert problems_of(data) == [
        "province: code '1' must be 2 digits (Decision 19/2025/QĐ-TTg)",
        "communes[2]: code '0166' must be 5 digits",
        "communes[2]: 'level' is 'ward', expected one of ('xa', 'phuong', 'dac_khu')",
        "communes[3]: duplicate '00166'",
        "centre 'hcc-x': parent 'hcc-99' is not a centre",
        "agencies[2]: commune '99999' is not listed",
        "agencies[3]: 'level' is 'district', expected one of ('province', 'commune', 'vertical')",
        "procedures[1]: field 'thue' is not listed under [[fields]]",
        "procedures[2]: give exactly one of allotted_working_days, allotted_working_hours",
        "procedures[3]: give exactly one of allotted_working_days, allotted_working_hours",
        "groups[1]: commune '99999' is not listed",
    ]


@pytest.mark.parametrize("code", ["1", "001", "ha", ""])
def test_bad_province_code(code: str) -> None:
    data = minimal()
    data["province"]["code"] = code
    expected = (
        "province: 'code' must be a non-empty string"
        if not code
        else f"province: code {code!r} must be 2 digits (Decision 19/2025/QĐ-TTg)"
    )
    assert problems_of(data) == [expected]


def test_missing_province_table() -> None:
    data = minimal()
    del data["province"]
    assert problems_of(data) == ["missing [province] table"]


@pytest.mark.parametrize("code", ["0166", "001666", "abcde"])
def test_bad_commune_code(code: str) -> None:
    data = minimal()
    data["communes"][1]["code"] = code
    assert problems_of(data) == [f"communes[1]: code {code!r} must be 5 digits"]


@pytest.mark.parametrize(
    ("table", "key", "message"),
    [
        ("communes", "code", "communes[2]: duplicate '00166'"),
        ("centres", "id", "centres[2]: duplicate 'hcc-01'"),
        ("agencies", "id", "agencies[2]: duplicate 'so-tu-phap-01'"),
        ("fields", "id", "fields[1]: duplicate 'ho-tich'"),
        ("procedures", "code", "procedures[1]: duplicate 'p1'"),
        ("groups", "id", "groups[1]: duplicate 'cu-cau-giay'"),
    ],
)
def test_duplicates(table: str, key: str, message: str) -> None:
    data = minimal()
    data[table].append(copy.deepcopy(data[table][0]))
    assert problems_of(data) == [message]


def test_unknown_parent_centre() -> None:
    data = minimal()
    data["centres"][1]["parent"] = "hcc-02"
    assert problems_of(data) == ["centre 'hcc-01-cn1': parent 'hcc-02' is not a centre"]


def test_centre_in_an_unlisted_commune() -> None:
    data = minimal()
    data["centres"].append({"id": "hcc-00004", "name": "X", "level": "commune", "commune": "00004"})
    assert problems_of(data) == ["centre 'hcc-00004': commune '00004' is not listed"]


def test_agency_in_an_unlisted_commune() -> None:
    data = minimal()
    data["agencies"][1]["commune"] = "00004"
    assert problems_of(data) == ["agencies[1]: commune '00004' is not listed"]


def test_procedure_with_an_unlisted_field() -> None:
    data = minimal()
    data["procedures"][0]["field"] = "dat-dai"
    assert problems_of(data) == ["procedures[0]: field 'dat-dai' is not listed under [[fields]]"]


@pytest.mark.parametrize(
    "allotted",
    [{}, {"allotted_working_days": 3, "allotted_working_hours": 8}],
    ids=["neither", "both"],
)
def test_procedure_with_both_or_neither_allotments(allotted: dict[str, int]) -> None:
    data = minimal()
    proc = data["procedures"][0]
    del proc["allotted_working_hours"]
    proc.update(allotted)
    assert problems_of(data) == [
        "procedures[0]: give exactly one of allotted_working_days, allotted_working_hours"
    ]


def test_procedure_cutoff_must_be_a_time() -> None:
    data = minimal()
    data["procedures"][0]["receipt_cutoff"] = "15:00"
    assert problems_of(data) == ["procedures[0]: receipt_cutoff must be a time like 15:00:00"]


def test_group_with_an_unlisted_commune() -> None:
    data = minimal()
    data["groups"][0]["communes"] = ["00166", "00004"]
    assert problems_of(data) == ["groups[0]: commune '00004' is not listed"]


@pytest.mark.parametrize("communes", [[], "00166", None])
def test_group_needs_a_list_of_communes(communes: Any) -> None:
    data = minimal()
    data["groups"][0]["communes"] = communes
    assert problems_of(data) == ["groups[0]: 'communes' must be a non-empty list of codes"]


def test_area_with_an_unlisted_commune() -> None:
    data = minimal()
    data["areas"] = [{"id": "tram", "name": "Trạm", "communes": ["00166", "00145"]}]
    assert problems_of(data) == ["areas[0]: commune '00145' is not listed"]


@pytest.mark.parametrize(
    ("table", "index", "key", "value", "allowed"),
    [
        ("communes", 0, "level", "ward", COMMUNE_LEVELS),
        ("centres", 0, "level", "district", ("province", "branch", "commune")),
        ("agencies", 0, "level", "ministry", AGENCY_LEVELS),
        ("procedures", 0, "agency_level", "district", AGENCY_LEVELS),
    ],
)
def test_wrong_level_names(
    table: str, index: int, key: str, value: str, allowed: tuple[str, ...]
) -> None:
    data = minimal()
    data[table][index][key] = value
    assert problems_of(data) == [
        f"{table}[{index}]: {key!r} is {value!r}, expected one of {allowed}"
    ]


def test_missing_names_and_levels() -> None:
    data = minimal()
    del data["communes"][0]["name"]
    del data["centres"][0]["level"]
    data["agencies"][0]["name"] = "  "
    assert problems_of(data) == [
        "communes[0]: missing 'name'",
        "centres[0]: missing 'level'",
        "agencies[0]: 'name' must be a non-empty string",
    ]


def test_validity_dates() -> None:
    data = minimal()
    data["communes"][0]["valid_from"] = date(2025, 7, 1)
    data["communes"][0]["valid_to"] = date(2025, 6, 30)
    data["communes"][1]["valid_from"] = "2025-07-01"
    assert problems_of(data) == [
        "communes[0]: valid_to is before valid_from",
        "communes[1]: 'valid_from' must be a date like 2025-07-01",
    ]


def test_tables_must_be_arrays_of_tables() -> None:
    data = minimal()
    data["fields"] = {"id": "ho-tich", "name": "Hộ tịch"}
    problems = problems_of(data)
    assert problems[0] == "'fields' must be an array of tables ([[fields]])"
    # and the procedure that names the field is reported too, not hidden
    assert problems[1:] == ["procedures[0]: field 'ho-tich' is not listed under [[fields]]"]


@pytest.mark.parametrize("days", ["3", 0, -1])
def test_allotted_time_must_be_a_positive_number(days: Any) -> None:
    data = minimal()
    proc = data["procedures"][0]
    del proc["allotted_working_hours"]
    proc["allotted_working_days"] = days
    assert len(problems_of(data)) == 1


def test_fee_required_must_be_a_boolean() -> None:
    data = minimal()
    data["procedures"][0]["fee_required"] = "false"
    assert len(problems_of(data)) == 1


def test_a_procedure_names_its_settling_agency() -> None:
    data = minimal()
    data["procedures"][0]["agency"] = "so-tu-phap-01"
    assert parse_registry(data, "prov.toml").procedures["p1"].agency == "so-tu-phap-01"


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"agency": "so-x"}, "procedures[0]: agency 'so-x' is not under [[agencies]]"),
        (
            {"agency": "ubnd-00166"},
            "procedures[0]: agency 'ubnd-00166' is commune-level, the procedure province-level",
        ),
        (
            {"agency": "so-tu-phap-01", "agency_level": "commune"},
            "procedures[0]: a commune procedure is settled by each commune's People's "
            "Committee; remove 'agency'",
        ),
    ],
)
def test_a_settling_agency_must_exist_at_the_procedure_level(
    fields: dict[str, str], problem: str
) -> None:
    data = minimal()
    data["procedures"][0].update(fields)
    assert problems_of(data) == [problem]


# -- loading files -----------------------------------------------------------------


def test_load_registry_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "province-99.toml"
    with pytest.raises(RegistryError) as info:
        load_registry(path)
    assert info.value.source == str(path)
    assert info.value.problems == ["file not found"]


def test_load_registry_bad_toml(tmp_path: Path) -> None:
    path = tmp_path / "province.toml"
    path.write_text('[province]\ncode = "01\n', encoding="utf-8")
    with pytest.raises(RegistryError) as info:
        load_registry(path)
    assert len(info.value.problems) == 1
    assert info.value.problems[0].startswith("not valid TOML: ")
    assert str(info.value).startswith(f"{path}: 1 problem(s):")


def test_load_registry_reports_the_path_of_an_invalid_file(tmp_path: Path) -> None:
    path = tmp_path / "province.toml"
    path.write_text('[province]\ncode = "1"\nname = "X"\n', encoding="utf-8")
    with pytest.raises(RegistryError) as info:
        load_registry(path)
    assert info.value.source == str(path)
    assert info.value.problems == ["province: code '1' must be 2 digits (Decision 19/2025/QĐ-TTg)"]
