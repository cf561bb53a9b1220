import orjson

from alerts.alert_messages import alert_items, alert_message


def test_an_alert_message_decodes_to_its_items_and_drops_malformed_ones() -> None:
    good = {"alert": {"id": "al-1", "state": "open"}, "changes": ["opened", "escalated"]}
    message = orjson.loads(alert_message(3, [good, {"alert": {"id": 5}, "changes": []}]))
    assert message["type"] == "alert" and message["part"] == 3
    assert alert_items(message) == [good]
    assert alert_items({"type": "sla", "alerts": [good]}) == []
