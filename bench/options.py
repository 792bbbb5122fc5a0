"""Command-line options shared by several `bench` commands."""

import click

__all__ = ["BOOTSTRAP", "NAMESPACE", "check_bootstrap", "check_namespace", "check_not_empty"]



def check_bootstrap(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    # librdkafka takes "" and retries it until the command's own timeout (10 s of silence).
    if value is not None and not value.strip():
        raise click.BadParameter("empty; give host:port[,host:port...]")
    return value


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


def check_not_empty(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """An option that may be left out but not given empty (`--group "$G"` with G unset)."""
    if value is not None and not value.strip():
        raise click.BadParameter("empty; leave it out for the default")
    return value
