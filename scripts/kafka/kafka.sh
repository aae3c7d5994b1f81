#!/usr/bin/env bash
# kafka.sh runs a single-node Apache Kafka (KRaft, combined broker+controller) for tests,
# the demo and development. Jars come from Maven Central; nothing else is downloaded.
#
#   scripts/kafka/kafka.sh fetch    copy the Kafka jars into the cache (idempotent)
#   scripts/kafka/kafka.sh start    fetch, format storage if needed, start, wait until it answers
#   scripts/kafka/kafka.sh stop     stop the broker started by this script
#   scripts/kafka/kafka.sh status   say whether it runs and where
#
# Environment:
#   KPROBE_CACHE          jar cache root            (default $HOME/.cache/kprobe)
#   KPROBE_STATE          state root (data, logs)   (default /tmp/kprobe-services)
#   KPROBE_KAFKA_PORT     client listener port      (default 19092)
#   KPROBE_KAFKA_CONTROLLER_PORT                    (default client port + 1)
#   KPROBE_KAFKA_HEAP     JVM heap                  (default 512m)
#   KPROBE_KAFKA_TIMEOUT  seconds to wait on start  (default 90)
#   KPROBE_KAFKA_SASL     1: clients must log in with SASL (SCRAM-SHA-512 or PLAIN): on the
#                         client port without TLS (SASL_PLAINTEXT) and on port + 2 with TLS
#                         (SASL_SSL, a certificate for 127.0.0.1 from a CA made here, in
#                         $KPROBE_STATE/kafka-sasl/tls/ca.pem); state under
#                         $KPROBE_STATE/kafka-sasl, default port 19192. SCRAM users are created
#                         when the storage is formatted.
#   KPROBE_KAFKA_SASL_USER      the client user            (default kprobe)
#   KPROBE_KAFKA_SASL_PASSWORD  its password (default: generated once, kept in
#                               $KPROBE_STATE/kafka-sasl/sasl.password, mode 0600)
set -euo pipefail

KAFKA_VERSION=3.9.1
SLF4J_VERSION=1.7.36

CACHE_DIR="${KPROBE_CACHE:-${HOME:-/root}/.cache/kprobe}/kafka/${KAFKA_VERSION}"
LIBS_DIR="$CACHE_DIR/libs"
SASL="${KPROBE_KAFKA_SASL:-0}"
if [[ "$SASL" == 1 ]]; then
	STATE_DIR="${KPROBE_STATE:-/tmp/kprobe-services}/kafka-sasl"
	DEFAULT_PORT=19192
else
	STATE_DIR="${KPROBE_STATE:-/tmp/kprobe-services}/kafka"
	DEFAULT_PORT=19092
fi
DATA_DIR="$STATE_DIR/data"
LOG_DIR="$STATE_DIR/logs"
CONF_DIR="$STATE_DIR/conf"
PID_FILE="$STATE_DIR/kafka.pid"
PORT="${KPROBE_KAFKA_PORT:-$DEFAULT_PORT}"
CONTROLLER_PORT="${KPROBE_KAFKA_CONTROLLER_PORT:-$((PORT + 1))}"
TLS_PORT=$((PORT + 2))
HOST=127.0.0.1
HEAP="${KPROBE_KAFKA_HEAP:-512m}"
TIMEOUT="${KPROBE_KAFKA_TIMEOUT:-90}"
BOOTSTRAP="$HOST:$PORT"

log() { printf 'kafka.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

need() {
	command -v "$1" >/dev/null 2>&1 || die "$1 not found: $2"
}

fetch() {
	# The marker names the artifact set, so changing the versions above refetches.
	local want="kafka_2.13+kafka-tools ${KAFKA_VERSION} slf4j-reload4j ${SLF4J_VERSION}"
	if [[ -f "$LIBS_DIR/.complete" && "$(cat "$LIBS_DIR/.complete")" == "$want" ]]; then
		return 0
	fi
	need mvn "install Maven (apt-get install maven)"
	need java "install Java 17 (apt-get install openjdk-17-jre-headless)"
	mkdir -p "$CACHE_DIR"
	cat >"$CACHE_DIR/pom.xml" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.kprobe</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>${KAFKA_VERSION}</version>
    </dependency>
    <dependency>
      <!-- kafka-topics and friends: used for the readiness check and by developers -->
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka-tools</artifactId>
      <version>${KAFKA_VERSION}</version>
    </dependency>
    <dependency>
      <groupId>org.slf4j</groupId>
      <artifactId>slf4j-reload4j</artifactId>
      <version>${SLF4J_VERSION}</version>
    </dependency>
  </dependencies>
</project>
EOF
	log "fetching Kafka ${KAFKA_VERSION} jars from Maven Central into $LIBS_DIR"
	rm -rf "$LIBS_DIR"
	if ! mvn -q -B -f "$CACHE_DIR/pom.xml" dependency:copy-dependencies \
		-DoutputDirectory="$LIBS_DIR" -DincludeScope=runtime >"$CACHE_DIR/mvn.log" 2>&1; then
		tail -n 30 "$CACHE_DIR/mvn.log" >&2
		die "mvn dependency:copy-dependencies failed (full log: $CACHE_DIR/mvn.log)"
	fi
	ls "$LIBS_DIR"/kafka_2.13-"${KAFKA_VERSION}".jar >/dev/null 2>&1 ||
		die "kafka_2.13-${KAFKA_VERSION}.jar missing in $LIBS_DIR after fetch"
	echo "$want" >"$LIBS_DIR/.complete"
}

running_pid() {
	[[ -f "$PID_FILE" ]] || return 1
	local pid
	pid="$(cat "$PID_FILE")"
	[[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
	# Guard against a recycled pid belonging to something else.
	tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'kafka.Kafka' || return 1
	echo "$pid"
}

port_open() {
	(exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null
}

write_config() {
	mkdir -p "$DATA_DIR" "$LOG_DIR" "$CONF_DIR"
	local listener=PLAINTEXT listeners advertised map
	listeners="PLAINTEXT://${HOST}:${PORT}"
	if [[ "$SASL" == 1 ]]; then
		sasl_credentials
		make_tls
		listener=SASL_PLAINTEXT
		listeners="SASL_PLAINTEXT://${HOST}:${PORT},SASL_SSL://${HOST}:${TLS_PORT}"
		map=",SASL_SSL:SASL_SSL"
	fi
	advertised="$listeners"
	# In SASL mode the configuration holds passwords: this user's only.
	(umask 077 && cat >"$CONF_DIR/server.properties") <<EOF
# Generated by scripts/kafka/kafka.sh; edits are overwritten on start.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@${HOST}:${CONTROLLER_PORT}
listeners=${listeners},CONTROLLER://${HOST}:${CONTROLLER_PORT}
advertised.listeners=${advertised}
controller.listener.names=CONTROLLER
inter.broker.listener.name=${listener}
listener.security.protocol.map=CONTROLLER:PLAINTEXT,${listener}:${listener}${map:-}
log.dirs=${DATA_DIR}
num.partitions=4
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
auto.create.topics.enable=true
delete.topic.enable=true
# Single-member test groups should not wait 3 s before the first rebalance.
group.initial.rebalance.delay.ms=0
# Small machine shared with other services.
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
log.retention.hours=24
log.retention.bytes=1073741824
log.segment.bytes=134217728
message.max.bytes=10485760
replica.fetch.max.bytes=10485760
EOF
	if [[ "$SASL" == 1 ]]; then
		# The broker talks to itself as admin over SCRAM; clients may use SCRAM or PLAIN.
		cat >>"$CONF_DIR/server.properties" <<EOF
sasl.enabled.mechanisms=SCRAM-SHA-512,PLAIN
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="${ADMIN_PASSWORD}";
listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="${ADMIN_PASSWORD}" user_admin="${ADMIN_PASSWORD}" user_${SASL_USER}="${SASL_PASSWORD}";
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="${ADMIN_PASSWORD}";
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="${ADMIN_PASSWORD}" user_admin="${ADMIN_PASSWORD}" user_${SASL_USER}="${SASL_PASSWORD}";
ssl.keystore.type=PEM
ssl.keystore.location=${STATE_DIR}/tls/broker-keystore.pem
EOF
		(umask 077 && cat >"$CONF_DIR/client.properties") <<EOF
security.protocol=SASL_PLAINTEXT
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="${ADMIN_PASSWORD}";
EOF
	fi
	cat >"$CONF_DIR/log4j.properties" <<EOF
log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.RollingFileAppender
log4j.appender.file.File=${LOG_DIR}/server.log
log4j.appender.file.MaxFileSize=50MB
log4j.appender.file.MaxBackupIndex=2
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka=INFO
log4j.logger.org.apache.kafka=INFO
log4j.logger.kafka.request.logger=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.controller=INFO
log4j.logger.kafka.log.LogCleaner=WARN
log4j.logger.org.apache.kafka.raft=WARN
log4j.logger.org.apache.kafka.controller=WARN
EOF
	# Tools (StorageTool, TopicCommand) log to stderr at WARN only.
	cat >"$CONF_DIR/tools-log4j.properties" <<EOF
log4j.rootLogger=WARN, stderr
log4j.appender.stderr=org.apache.log4j.ConsoleAppender
log4j.appender.stderr.Target=System.err
log4j.appender.stderr.layout=org.apache.log4j.PatternLayout
log4j.appender.stderr.layout.ConversionPattern=[%d] %p %m (%c)%n
EOF
}

# sasl_credentials settles the SASL user and passwords: given in the environment, or
# generated once and kept (mode 0600) beside the broker's state.
sasl_credentials() {
	SASL_USER="${KPROBE_KAFKA_SASL_USER:-kprobe}"
	[[ "$SASL_USER" =~ ^[A-Za-z0-9_-]+$ ]] || die "KPROBE_KAFKA_SASL_USER: letters, digits, _ and - only"
	local pwfile="$STATE_DIR/sasl.password" adminfile="$STATE_DIR/sasl.admin-password"
	if [[ ! -s "$adminfile" ]]; then
		(umask 077 && od -An -tx1 -N16 /dev/urandom | tr -d ' \n' >"$adminfile")
	fi
	ADMIN_PASSWORD="$(cat "$adminfile")"
	if [[ -n "${KPROBE_KAFKA_SASL_PASSWORD:-}" ]]; then
		SASL_PASSWORD="$KPROBE_KAFKA_SASL_PASSWORD"
	else
		if [[ ! -s "$pwfile" ]]; then
			(umask 077 && od -An -tx1 -N16 /dev/urandom | tr -d ' \n' >"$pwfile")
		fi
		SASL_PASSWORD="$(cat "$pwfile")"
	fi
	[[ "$SASL_PASSWORD" =~ ^[A-Za-z0-9_.-]+$ ]] || die "KPROBE_KAFKA_SASL_PASSWORD: letters, digits, _ . and - only (it goes into a JAAS line)"
}

# make_tls makes, once, a CA and a certificate for 127.0.0.1 signed by it, for the SASL_SSL
# listener; clients verify the broker with tls/ca.pem.
make_tls() {
	local d="$STATE_DIR/tls"
	[[ -s "$d/broker-keystore.pem" ]] && return 0
	need openssl "install openssl (apt-get install openssl)"
	mkdir -p "$d"
	(
		umask 077
		cd "$d"
		openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 3650 \
			-subj "/CN=kprobe test Kafka CA" 2>/dev/null
		openssl req -newkey rsa:2048 -nodes -keyout broker.key -out broker.csr \
			-subj "/CN=127.0.0.1" 2>/dev/null
		printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >san.ext
		openssl x509 -req -in broker.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
			-out broker.pem -days 3650 -extfile san.ext 2>/dev/null
		cat broker.key broker.pem ca.pem >broker-keystore.pem
		chmod 0644 ca.pem
	) || die "making the test broker's TLS certificate failed"
}

tool() {
	java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
		-Dlog4j.configuration="file:$CONF_DIR/tools-log4j.properties" \
		-cp "$LIBS_DIR/*" "$@"
}

format_storage() {
	if [[ -f "$DATA_DIR/meta.properties" ]]; then
		return 0
	fi
	local cluster_id
	cluster_id="$(tool kafka.tools.StorageTool random-uuid)"
	log "formatting storage in $DATA_DIR (cluster id $cluster_id)"
	local scram=()
	if [[ "$SASL" == 1 ]]; then
		# KRaft keeps SCRAM credentials in the metadata log: they are created at format time.
		scram=(--add-scram "SCRAM-SHA-512=[name=admin,password=${ADMIN_PASSWORD}]"
			--add-scram "SCRAM-SHA-512=[name=${SASL_USER},password=${SASL_PASSWORD}]")
	fi
	tool kafka.tools.StorageTool format -t "$cluster_id" \
		-c "$CONF_DIR/server.properties" --ignore-formatted "${scram[@]}" >"$LOG_DIR/format.log" 2>&1 ||
		{ cat "$LOG_DIR/format.log" >&2; die "formatting storage failed (see $LOG_DIR/format.log)"; }
}

# broker_ready asks the broker for its topic list: this needs a working broker and controller,
# not just an open port.
broker_ready() {
	local client_config=()
	if [[ "$SASL" == 1 ]]; then
		client_config=(--command-config "$CONF_DIR/client.properties")
	fi
	timeout 30 java -Xmx128m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
		-Dlog4j.configuration="file:$CONF_DIR/tools-log4j.properties" \
		-cp "$LIBS_DIR/*" org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" --list \
		"${client_config[@]}" >/dev/null 2>&1
}

start() {
	local pid
	# Two test packages may start the same broker at once: the second waits, then finds it up.
	# (The broker itself must not inherit the lock: see 9>&- below.)
	mkdir -p "$STATE_DIR"
	exec 9>"$STATE_DIR/.start.lock"
	flock 9
	if pid="$(running_pid)"; then
		log "already running (pid $pid)"
		echo "$BOOTSTRAP"
		return 0
	fi
	if port_open "$PORT"; then
		die "port $PORT is in use by another process; stop it or set KPROBE_KAFKA_PORT"
	fi
	fetch
	write_config
	format_storage

	local t0
	t0="$(date +%s%N)"
	log "starting Kafka ${KAFKA_VERSION} on $BOOTSTRAP (log: $LOG_DIR/server.log)"
	# setsid detaches the broker from this shell's process group, so Ctrl-C in a test run
	# or the end of a CI step does not take it down half-way.
	setsid java -Xms"$HEAP" -Xmx"$HEAP" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
		-XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
		-Dlog4j.configuration="file:$CONF_DIR/log4j.properties" \
		-Dkafka.logs.dir="$LOG_DIR" \
		-cp "$LIBS_DIR/*" kafka.Kafka "$CONF_DIR/server.properties" \
		>"$LOG_DIR/stdout.log" 2>&1 </dev/null 9>&- &
	pid=$!
	echo "$pid" >"$PID_FILE"

	local deadline=$((SECONDS + TIMEOUT))
	until port_open "$PORT" && broker_ready; do
		if ! kill -0 "$pid" 2>/dev/null; then
			rm -f "$PID_FILE"
			tail -n 20 "$LOG_DIR/stdout.log" "$LOG_DIR/server.log" 2>/dev/null >&2 || true
			die "Kafka exited during start-up; see $LOG_DIR/server.log and $LOG_DIR/stdout.log"
		fi
		if ((SECONDS >= deadline)); then
			die "Kafka did not answer on $BOOTSTRAP within ${TIMEOUT}s (pid $pid still running); see $LOG_DIR/server.log"
		fi
		sleep 0.5
	done
	log "ready after $((($(date +%s%N) - t0) / 1000000)) ms (pid $pid)"
	echo "$BOOTSTRAP"
}

stop() {
	local pid
	if ! pid="$(running_pid)"; then
		rm -f "$PID_FILE"
		log "not running"
		return 0
	fi
	log "stopping pid $pid"
	kill -TERM "$pid"
	local i
	for ((i = 0; i < 600; i++)); do
		kill -0 "$pid" 2>/dev/null || { rm -f "$PID_FILE"; log "stopped"; return 0; }
		sleep 0.1
	done
	log "pid $pid still alive after 60s; sending SIGKILL"
	kill -KILL "$pid" 2>/dev/null || true
	rm -f "$PID_FILE"
}

status() {
	local pid
	if pid="$(running_pid)"; then
		if port_open "$PORT"; then
			echo "running pid=$pid bootstrap=$BOOTSTRAP log=$LOG_DIR/server.log"
		else
			echo "starting pid=$pid bootstrap=$BOOTSTRAP log=$LOG_DIR/server.log"
		fi
		return 0
	fi
	echo "stopped"
	return 3
}

case "${1:-}" in
fetch) fetch && log "jars in $LIBS_DIR" ;;
start) start ;;
stop) stop ;;
status) status ;;
restart) stop && start ;;
*)
	echo "usage: $0 {fetch|start|stop|status|restart}" >&2
	exit 2
	;;
esac
