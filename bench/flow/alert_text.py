"""How `bench alerts` prints one alert in a terminal."""

__all__ = ["format_alert", "top_reason"]


def format_alert(alert: dict) -> str:
    """One alert as the seed's investigation console printed it."""
    action = alert.get("action_required", "REVIEW")
    symbol = "!!!" if action == "BLOCK" else "(!)"
    amount = alert.get("amount")
    score = alert.get("fraud_score")
    return "\n".join([
        f"\n{symbol} FRAUD ALERT {symbol}",
        f"  TX:       {alert.get('transaction_id')}",
        f"  Card:     {alert.get('card_hash')}",
        f"  Amount:   ${amount:,.2f}" if isinstance(amount, (int, float)) else f"  Amount:   {amount}",
        f"  Score:    {score:.4f}" if isinstance(score, (int, float)) else f"  Score:    {score}",
        f"  Risk:     {alert.get('risk_level')}",
        f"  Action:   {action}",
        f"  Category: {alert.get('merchant_category', 'unknown')}",
        f"  Reason:   {top_reason(alert)}",
    ])


def top_reason(alert: dict) -> str:
    """The alert's first reason as `text (CODE +contribution)`, or `none given`."""
    reasons = alert.get("reasons")
    if not reasons or not isinstance(reasons[0], dict):
        return "none given"
    first = reasons[0]
    contribution = first.get("contribution")
    weight = f" {contribution:+.2f}" if isinstance(contribution, (int, float)) else ""
    return f"{first.get('text', '?')} ({first.get('code', '?')}{weight})"
