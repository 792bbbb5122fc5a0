"""bench alerts prints like the seed's investigation console."""

from bench.flow.alert_text import format_alert


def test_block_and_review_markers():
    alert = {"transaction_id": "tx-1", "card_hash": "c1", "amount": 1234.5, "fraud_score": 0.98765,
             "risk_level": "CRITICAL", "action_required": "BLOCK", "merchant_category": "jewelry"}
    text = format_alert(alert)
    assert "!!! FRAUD ALERT !!!" in text and "$1,234.50" in text and "0.9877" in text and "jewelry" in text
    review = format_alert({**alert, "action_required": "REVIEW", "risk_level": "HIGH"})
    assert "(!) FRAUD ALERT (!)" in review and "!!!" not in review


def test_missing_fields_do_not_crash():
    text = format_alert({"transaction_id": "tx-2"})
    assert "tx-2" in text and "unknown" in text


def test_the_top_reason_is_printed():
    alert = {"transaction_id": "tx-3", "action_required": "REVIEW", "reasons": [
        {"code": "AMOUNT_MICRO", "value": 1.0, "contribution": 2.9041,
         "text": "micro amount (1.00 or less), as in card testing"},
        {"code": "BEHAVIOUR_V14", "value": -3.6, "contribution": 2.46, "text": "behaviour"}]}
    text = format_alert(alert)
    assert "  Reason:   micro amount (1.00 or less), as in card testing (AMOUNT_MICRO +2.90)" in text
    assert "BEHAVIOUR_V14" not in text
    assert "Reason:   none given" in format_alert({"transaction_id": "tx-4"})
