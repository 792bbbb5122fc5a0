"""Command-line options shared by several `bench` commands."""

import click

__all__ = ["BOOTSTRAP", "NAMESPACE"]

BOOTSTRAP = click.option("--bootstrap", default="127.0.0.1:9092", show_default=True,
                         envvar="FRAUDSTREAM_BOOTSTRAP", help="Kafka bootstrap servers.")
NAMESPACE = click.option("--namespace", default="", help="Prefix for the four topic names.")
