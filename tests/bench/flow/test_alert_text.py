"""bench alerts prints like the seed's investigation console."""

from bench.flow.alert_text import format_alert


def test_block_and_review_markers():
    alert = {"transaction_id": "tx-1", "card_hash": "c1", "amount": 1234.5, "fraud_score": 0.98765,
             "risk_level": "CRITICAL", "action_required": "BLOCK", "merchant_category": "jewelry"}
    text = format_alert(alert)
    assert "!!! FRAUD ALERT !!!" in text and "$1234.50" in text and "0.9877" in text and "jewelry" in text
    review = format_alert({**alert, "action_required": "REVIEW", "risk_level": "HIGH"})
    assert "(!) FRAUD ALERT (!)" in review and "!!!" not in review


def test_missing_fields_do_not_crash():
    text = format_alert({"transaction_id": "tx-2"})
    assert "tx-2" in text and "unknown" in text
