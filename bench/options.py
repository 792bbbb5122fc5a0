"""Command-line options shared by several `bench` commands."""

import click

from core.cli import BOOTSTRAP_HINT, not_empty

__all__ = ["BOOTSTRAP", "NAMESPACE", "check_bootstrap", "check_namespace", "check_not_empty"]

check_bootstrap = not_empty(BOOTSTRAP_HINT)   # as the service's own --bootstrap
check_not_empty = not_empty("leave it out for the default")


BOOTSTRAP = click.option("--bootstrap", default="127.0.0.1:9092", show_default=True, callback=check_bootstrap,
                         envvar="FRAUDSTREAM_BOOTSTRAP", help="Kafka bootstrap servers.")


def check_namespace(ctx: click.Context, param: click.Parameter, value: str | None) -> str:
    # `--namespace "$NS"` with NS unset must not mean the default topics: `bench topics delete
    # --namespace "" --yes` deleted them.
    if value is not None and not value.strip():
        raise click.BadParameter("empty; leave it out for the default topics")
    return value or ""


NAMESPACE = click.option("--namespace", default=None, callback=check_namespace, metavar="NS",
                         help="Topic namespace: NS.transactions, NS.fraud-scores, ... (default: none).")
