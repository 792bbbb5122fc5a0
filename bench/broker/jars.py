"""Resolve Apache Kafka's broker jars from Maven Central into a cache, once."""

import shutil
import subprocess
import tempfile
from pathlib import Path

from bench.errors import BrokerError
from core.paths import home

__all__ = ["KAFKA_VERSION", "LOG4J_VERSION", "libs_dir", "ensure_jars", "java_command"]

KAFKA_VERSION = "4.1.1"
# kafka_2.13 pulls everything but a logging backend; Kafka 4.0-4.2 use slf4j 1.x, hence
# log4j-slf4j-impl (not the slf4j2 binding).
LOG4J_VERSION = "2.24.3"
MIN_JAVA = 17

_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>fraudstream</groupId><artifactId>kafka-broker-jars</artifactId>
  <version>1</version><packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>{kafka}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-api</artifactId><version>{log4j}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>{log4j}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>{log4j}</version></dependency>
  </dependencies>
</project>
"""


def libs_dir() -> Path:
    return home() / "kafka" / KAFKA_VERSION / "libs"


def ensure_jars(echo=print) -> Path:
    """The folder of broker jars, resolving them with Maven on first use."""
    libs = libs_dir()
    if (libs / f"kafka_2.13-{KAFKA_VERSION}.jar").is_file():
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerError("Maven (`mvn`) is needed to fetch the Kafka jars: apt-get install maven")
    echo(f"fetching Apache Kafka {KAFKA_VERSION} jars from Maven Central (once) ...")
    with tempfile.TemporaryDirectory() as tmp:
        pom = Path(tmp) / "pom.xml"
        pom.write_text(_POM.format(kafka=KAFKA_VERSION, log4j=LOG4J_VERSION))
        staging = Path(tmp) / "libs"
        proc = subprocess.run(
            [mvn, "-B", "-q", "-f", str(pom), "dependency:copy-dependencies",
             f"-DoutputDirectory={staging}"],
            capture_output=True, text=True,
        )
        if proc.returncode != 0:
            errors = [ln for ln in proc.stdout.splitlines() if "ERROR" in ln][:3]
            detail = " | ".join(errors) or proc.stderr.strip()[-300:]
            raise BrokerError(
                f"Maven could not resolve org.apache.kafka:kafka_2.13:{KAFKA_VERSION}: {detail}"
            )
        libs.parent.mkdir(parents=True, exist_ok=True)
        if libs.exists():
            shutil.rmtree(libs)
        shutil.move(str(staging), str(libs))
    return libs


def java_command() -> str:
    """Path of a java >= 17, from JAVA_HOME or PATH."""
    import os

    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if not java or not Path(java).exists():
        raise BrokerError(
            f"Java {MIN_JAVA}+ is needed to run the Kafka broker and none was found: "
            "apt-get install openjdk-17-jre-headless, or set JAVA_HOME"
        )
    out = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    major = _java_major(out)
    if major is not None and major < MIN_JAVA:
        raise BrokerError(
            f"Kafka {KAFKA_VERSION} needs Java {MIN_JAVA}+, but {java} is Java {major}: "
            "install openjdk-17-jre-headless, or point JAVA_HOME at a newer JDK"
        )
    return java


def _java_major(version_output: str) -> int | None:
    import re

    match = re.search(r'version "(\d+)(?:\.(\d+))?', version_output)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2)) if major == 1 and match.group(2) else major
