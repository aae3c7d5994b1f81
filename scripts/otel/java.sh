#!/usr/bin/env bash
# java.sh fetches the stock OpenTelemetry Java agent and the OpenTelemetry API jars from
# Maven Central into the kprobe cache, for the end-to-end tests with a real client.
# Idempotent: does nothing when the pinned jars are already there. Prints the directory
# holding opentelemetry-javaagent.jar and lib/ (the API jars to compile and run against).
set -euo pipefail

AGENT_VERSION="${KPROBE_OTEL_JAVAAGENT_VERSION:-2.33.1}"
API_VERSION="${KPROBE_OTEL_JAVA_API_VERSION:-1.67.0}"
dir="${KPROBE_CACHE:-${HOME:-/root}/.cache/kprobe}/otel/java-${AGENT_VERSION}"
want="javaagent ${AGENT_VERSION} api ${API_VERSION}"

die() { echo "java.sh: $*" >&2; exit 1; }

if [[ -f "$dir/.complete" && "$(cat "$dir/.complete")" == "$want" ]]; then
	echo "$dir"
	exit 0
fi
command -v mvn >/dev/null || die "mvn not found: install Maven (apt-get install maven)"
command -v javac >/dev/null || die "javac not found: install a JDK 17 (apt-get install openjdk-17-jdk-headless)"
mkdir -p "$dir"
cat >"$dir/pom.xml" <<POM
<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.kprobe</groupId>
  <artifactId>otel-java-client</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>io.opentelemetry.javaagent</groupId><artifactId>opentelemetry-javaagent</artifactId><version>${AGENT_VERSION}</version></dependency>
    <dependency><groupId>io.opentelemetry</groupId><artifactId>opentelemetry-api</artifactId><version>${API_VERSION}</version></dependency>
    <dependency><groupId>io.opentelemetry</groupId><artifactId>opentelemetry-context</artifactId><version>${API_VERSION}</version></dependency>
    <dependency><groupId>io.opentelemetry</groupId><artifactId>opentelemetry-common</artifactId><version>${API_VERSION}</version></dependency>
  </dependencies>
  <build><plugins><plugin>
    <groupId>org.apache.maven.plugins</groupId><artifactId>maven-dependency-plugin</artifactId><version>3.8.1</version>
  </plugin></plugins></build>
</project>
POM
echo "java.sh: fetching opentelemetry-javaagent ${AGENT_VERSION} and the API ${API_VERSION} from Maven Central into $dir ..." >&2
rm -rf "$dir/lib"
if ! mvn -q -B -f "$dir/pom.xml" dependency:copy-dependencies -DoutputDirectory="$dir/lib" \
	-DincludeScope=runtime -DexcludeTransitive=true >"$dir/mvn.log" 2>&1; then
	tail -n 5 "$dir/mvn.log" >&2
	die "mvn could not fetch the OpenTelemetry Java agent: is Maven Central reachable? (settings.xml mirror, proxy; full log $dir/mvn.log)"
fi
mv -f "$dir/lib/opentelemetry-javaagent-${AGENT_VERSION}.jar" "$dir/opentelemetry-javaagent.jar" ||
	die "opentelemetry-javaagent-${AGENT_VERSION}.jar missing after the fetch (see $dir/mvn.log)"
for a in api context common; do
	[[ -f "$dir/lib/opentelemetry-$a-${API_VERSION}.jar" ]] || die "opentelemetry-$a-${API_VERSION}.jar missing after the fetch (see $dir/mvn.log)"
done
echo "$want" >"$dir/.complete"
echo "$dir"
