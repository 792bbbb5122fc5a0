"""core.topicids.id_changes: how the topics a scoring process started on differ from those there now."""

from core.topicids import id_changes

LEARNED = {"t.transactions": "A", "t.fraud-scores": "B", "t.fraud-alerts": "C"}


def test_the_same_ids_are_no_change():
    assert id_changes(LEARNED, dict(LEARNED)) == []


def test_a_new_id_is_a_topic_created_again():
    assert id_changes(LEARNED, {**LEARNED, "t.fraud-scores": "B2"}) == ["t.fraud-scores was deleted and created again"]


def test_a_missing_topic_is_deleted_and_new_ids_are_named_in_order():
    now = {"t.transactions": "A2", "t.fraud-scores": None, "t.fraud-alerts": "C2"}
    assert id_changes(LEARNED, now) == ["t.transactions, t.fraud-alerts were deleted and created again",
                                        "t.fraud-scores was deleted"]
    assert id_changes(LEARNED, {"t.transactions": "A"}) == ["t.fraud-scores, t.fraud-alerts were deleted"]
