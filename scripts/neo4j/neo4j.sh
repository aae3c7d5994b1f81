#!/usr/bin/env bash
# neo4j.sh runs a single Neo4j Community server for tests, benchmarks and development: the
# graph store of the cluster shape. Jars come from Maven Central; nothing else is downloaded.
#
#   scripts/neo4j/neo4j.sh fetch    copy the Neo4j jars into the cache (idempotent)
#   scripts/neo4j/neo4j.sh start    fetch, set the password if needed, start, wait for Bolt
#   scripts/neo4j/neo4j.sh stop     stop the server started by this script
#   scripts/neo4j/neo4j.sh status   say whether it runs and where
#   scripts/neo4j/neo4j.sh env      print the KPROBE_NEO4J_* variables clients use
#
# The password is generated on first use and kept in a 0600 file in the cache
# ($KPROBE_CACHE/neo4j/password), never in the repository; clients read it through
# KPROBE_NEO4J_PASSWORD_FILE. Bolt also accepts TLS (bolt+s://) with a certificate for
# 127.0.0.1 signed by a CA generated beside the password ($KPROBE_CACHE/neo4j/tls/ca.crt,
# KPROBE_NEO4J_CA_FILE), so that clients' TLS is tested against a real server. The server's data is disposable (tests isolate themselves by ID
# prefix): when it was initialised with another password, it is wiped and initialised again.
#
# Environment:
#   KPROBE_CACHE          jar and password cache root (default $HOME/.cache/kprobe)
#   KPROBE_STATE          state root (data, logs)     (default /tmp/kprobe-services)
#   KPROBE_NEO4J_PORT     Bolt port                   (default 7687)
#   KPROBE_NEO4J_HEAP     JVM heap (-Xms and -Xmx)    (default 512m)
#   KPROBE_NEO4J_PAGECACHE page cache size            (default 512m: the benchmark graph is ~400 MB)
#   KPROBE_NEO4J_TIMEOUT  seconds to wait on start    (default 120)
set -euo pipefail

NEO4J_VERSION=5.26.30
DEP_PLUGIN_VERSION=3.8.1 # Maven 3.8's default (2.8) also pulls test jars and fails

CACHE_ROOT="${KPROBE_CACHE:-${HOME:-/root}/.cache/kprobe}/neo4j"
CACHE_DIR="$CACHE_ROOT/${NEO4J_VERSION}"
LIB_DIR="$CACHE_DIR/lib"
PASSWORD_FILE="$CACHE_ROOT/password"
TLS_DIR="$CACHE_ROOT/tls"
STATE_DIR="${KPROBE_STATE:-/tmp/kprobe-services}/neo4j"
HOME_DIR="$STATE_DIR/home"
CONF_DIR="$HOME_DIR/conf"
DATA_DIR="$HOME_DIR/data"
LOG_DIR="$HOME_DIR/logs"
PID_FILE="$STATE_DIR/neo4j.pid"
PASSWORD_MARK="$STATE_DIR/password.sha256" # which password the data was initialised with
HOST=127.0.0.1
PORT="${KPROBE_NEO4J_PORT:-7687}"
HEAP="${KPROBE_NEO4J_HEAP:-512m}"
PAGECACHE="${KPROBE_NEO4J_PAGECACHE:-512m}"
TIMEOUT="${KPROBE_NEO4J_TIMEOUT:-120}"
URI="bolt://$HOST:$PORT"

log() { printf 'neo4j.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

need() {
	command -v "$1" >/dev/null 2>&1 || die "$1 not found: $2"
}

fetch() {
	# The marker names the artifact set, so changing the versions above refetches.
	local want="org.neo4j:neo4j ${NEO4J_VERSION} dependency-plugin ${DEP_PLUGIN_VERSION}"
	if [[ -f "$LIB_DIR/.complete" && "$(cat "$LIB_DIR/.complete")" == "$want" ]]; then
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
  <artifactId>neo4j-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.neo4j</groupId>
      <artifactId>neo4j</artifactId>
      <version>${NEO4J_VERSION}</version>
    </dependency>
  </dependencies>
  <build>
    <plugins>
      <plugin>
        <groupId>org.apache.maven.plugins</groupId>
        <artifactId>maven-dependency-plugin</artifactId>
        <version>${DEP_PLUGIN_VERSION}</version>
      </plugin>
    </plugins>
  </build>
</project>
EOF
	log "fetching Neo4j ${NEO4J_VERSION} jars from Maven Central into $LIB_DIR"
	rm -rf "$LIB_DIR"
	if ! mvn -q -B -f "$CACHE_DIR/pom.xml" dependency:copy-dependencies \
		-DoutputDirectory="$LIB_DIR" -DincludeScope=runtime >"$CACHE_DIR/mvn.log" 2>&1; then
		tail -n 30 "$CACHE_DIR/mvn.log" >&2
		die "mvn dependency:copy-dependencies failed (full log: $CACHE_DIR/mvn.log)"
	fi
	ls "$LIB_DIR"/neo4j-"${NEO4J_VERSION}".jar >/dev/null 2>&1 ||
		die "neo4j-${NEO4J_VERSION}.jar missing in $LIB_DIR after fetch"
	echo "$want" >"$LIB_DIR/.complete"
}

running_pid() {
	[[ -f "$PID_FILE" ]] || return 1
	local pid
	pid="$(cat "$PID_FILE")"
	[[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
	# Guard against a recycled pid belonging to something else.
	tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'CommunityEntryPoint' || return 1
	echo "$pid"
}

port_open() {
	(exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null
}

# password prints the server's password, generating it (0600) on first use.
password() {
	if [[ ! -s "$PASSWORD_FILE" ]]; then
		mkdir -p "$CACHE_ROOT"
		(
			umask 077
			# 32 characters from [A-Za-z0-9]: no quoting trouble in config or clients.
			tr -dc 'A-Za-z0-9' </dev/urandom | head -c 32 >"$PASSWORD_FILE.tmp"
		)
		mv "$PASSWORD_FILE.tmp" "$PASSWORD_FILE"
		log "generated a password in $PASSWORD_FILE"
	fi
	chmod 600 "$PASSWORD_FILE"
	cat "$PASSWORD_FILE"
}

# tls makes a CA and a server certificate for 127.0.0.1 and localhost, once.
tls() {
	[[ -s "$TLS_DIR/public.crt" && -s "$TLS_DIR/private.key" && -s "$TLS_DIR/ca.crt" ]] && return 0
	need openssl "install OpenSSL (apt-get install openssl)"
	mkdir -p "$TLS_DIR"
	chmod 700 "$TLS_DIR"
	(
		cd "$TLS_DIR"
		umask 077
		openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=kprobe test CA" \
			-keyout ca.key -out ca.crt
		openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout private.key -out server.csr
		printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >san.ext
		openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
			-extfile san.ext -out public.crt
		rm -f server.csr san.ext
	) >"$TLS_DIR/openssl.log" 2>&1 || { cat "$TLS_DIR/openssl.log" >&2; die "making the test certificates failed"; }
	chmod 644 "$TLS_DIR/ca.crt"
	log "made a test CA and server certificate in $TLS_DIR"
}

# write_config writes neo4j.conf (or the file given, to compare with the running one).
write_config() {
	mkdir -p "$CONF_DIR" "$DATA_DIR" "$LOG_DIR"
	cat >"${1:-$CONF_DIR/neo4j.conf}" <<EOF
# Generated by scripts/neo4j/neo4j.sh; edits are overwritten on start.
server.default_listen_address=${HOST}
server.bolt.listen_address=${HOST}:${PORT}
server.bolt.advertised_address=${HOST}:${PORT}
# Bolt only: the HTTP connector would take another port nobody here uses.
server.http.enabled=false
server.https.enabled=false
server.directories.data=${DATA_DIR}
server.directories.logs=${LOG_DIR}
server.memory.pagecache.size=${PAGECACHE}
dbms.security.auth_enabled=true
dbms.usage_report.enabled=false
# TLS is optional: bolt:// and bolt+s:// both work on the one port.
server.bolt.tls_level=OPTIONAL
dbms.ssl.policy.bolt.enabled=true
dbms.ssl.policy.bolt.base_directory=${TLS_DIR}
dbms.ssl.policy.bolt.private_key=private.key
dbms.ssl.policy.bolt.public_certificate=public.crt
dbms.ssl.policy.bolt.client_auth=NONE
# A test server on a small machine: keep the transaction logs short.
db.tx_log.rotation.retention_policy=100M size
EOF
}

# init_password sets the initial password before the first start. A data directory
# initialised with another password (the password file was deleted) is wiped: it only ever
# holds test and benchmark data.
init_password() {
	local secret sum
	secret="$(password)"
	sum="$(printf '%s' "$secret" | sha256sum | cut -d' ' -f1)"
	if [[ -f "$PASSWORD_MARK" && "$(cat "$PASSWORD_MARK")" == "$sum" ]]; then
		return 0
	fi
	if [[ -d "$DATA_DIR/databases" ]]; then
		log "data in $DATA_DIR was initialised with another password; wiping it"
		rm -rf "$DATA_DIR"
		mkdir -p "$DATA_DIR"
	fi
	log "setting the initial password"
	NEO4J_HOME="$HOME_DIR" NEO4J_CONF="$CONF_DIR" \
		java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -cp "$LIB_DIR/*" \
		org.neo4j.server.startup.Neo4jAdminCommand dbms set-initial-password "$secret" \
		>"$LOG_DIR/set-password.log" 2>&1 ||
		{ tail -n 20 "$LOG_DIR/set-password.log" >&2; die "setting the initial password failed (see $LOG_DIR/set-password.log)"; }
	echo "$sum" >"$PASSWORD_MARK"
}

# ready waits for Bolt to accept and the server to report it started (the port opens a
# little before the databases are available).
ready() {
	port_open "$PORT" && grep -q 'Started\.' "$LOG_DIR/console.log" 2>/dev/null
}

start() {
	local pid
	if pid="$(running_pid)"; then
		tls
		write_config "$CONF_DIR/neo4j.conf.want"
		if cmp -s "$CONF_DIR/neo4j.conf.want" "$CONF_DIR/neo4j.conf"; then
			log "already running (pid $pid)"
			echo "$URI"
			return 0
		fi
		log "configuration changed (port, memory or TLS): restarting"
		stop
	fi
	if port_open "$PORT"; then
		die "port $PORT is in use by another process; stop it or set KPROBE_NEO4J_PORT"
	fi
	need java "install Java 17 (apt-get install openjdk-17-jre-headless)"
	fetch
	tls
	write_config
	init_password

	local t0
	t0="$(date +%s%N)"
	log "starting Neo4j ${NEO4J_VERSION} on $URI (log: $LOG_DIR/console.log)"
	# Heap sizes in neo4j.conf are not applied when the entry point is run directly: -Xmx
	# is given here. setsid detaches the server from this shell's process group, so Ctrl-C
	# in a test run does not take it down half-way.
	: >"$LOG_DIR/console.log"
	NEO4J_HOME="$HOME_DIR" NEO4J_CONF="$CONF_DIR" \
		setsid java -Xms"$HEAP" -Xmx"$HEAP" -XX:+UseG1GC -XX:+ExitOnOutOfMemoryError \
		-Djava.awt.headless=true -cp "$LIB_DIR/*" org.neo4j.server.CommunityEntryPoint \
		--home-dir="$HOME_DIR" --config-dir="$CONF_DIR" --console-mode \
		>"$LOG_DIR/console.log" 2>&1 </dev/null &
	pid=$!
	echo "$pid" >"$PID_FILE"

	local deadline=$((SECONDS + TIMEOUT))
	until ready; do
		if ! kill -0 "$pid" 2>/dev/null; then
			rm -f "$PID_FILE"
			tail -n 20 "$LOG_DIR/console.log" >&2 || true
			die "Neo4j exited during start-up; see $LOG_DIR/console.log"
		fi
		if ((SECONDS >= deadline)); then
			die "Neo4j did not accept Bolt on $URI within ${TIMEOUT}s (pid $pid still running); see $LOG_DIR/console.log"
		fi
		sleep 0.5
	done
	log "ready after $((($(date +%s%N) - t0) / 1000000)) ms (pid $pid)"
	echo "$URI"
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
		if ready; then
			echo "running pid=$pid uri=$URI password_file=$PASSWORD_FILE log=$LOG_DIR/console.log"
		else
			echo "starting pid=$pid uri=$URI log=$LOG_DIR/console.log"
		fi
		return 0
	fi
	echo "stopped"
	return 3
}

case "${1:-}" in
fetch) fetch && log "jars in $LIB_DIR" ;;
start) start ;;
stop) stop ;;
status) status ;;
restart) stop && start ;;
env)
	echo "KPROBE_NEO4J_URI=$URI"
	echo "KPROBE_NEO4J_USER=neo4j"
	echo "KPROBE_NEO4J_PASSWORD_FILE=$PASSWORD_FILE"
	echo "KPROBE_NEO4J_CA_FILE=$TLS_DIR/ca.crt"
	echo "KPROBE_NEO4J_PID_FILE=$PID_FILE"
	;;
*)
	echo "usage: $0 {fetch|start|stop|status|restart|env}" >&2
	exit 2
	;;
esac
