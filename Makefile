# kprobe — two commands matter: `make demo` and `make test`. Both install what they need.
SHELL := /bin/bash
GO    ?= go
BIN   := bin
CACHE ?= $(HOME)/.cache/kprobe
export KPROBE_CACHE := $(CACHE)
export CHDB_LIB_PATH ?= $(CACHE)/chdb/libchdb.so
export KPROBE_KAFKA_BROKERS ?= 127.0.0.1:19092
# The Neo4j server scripts/neo4j/neo4j.sh starts; its password stays in the cache (0600).
export KPROBE_NEO4J_URI ?= bolt://127.0.0.1:7687
export KPROBE_NEO4J_USER ?= neo4j
export KPROBE_NEO4J_PASSWORD_FILE ?= $(CACHE)/neo4j/password
export KPROBE_NEO4J_CA_FILE ?= $(CACHE)/neo4j/tls/ca.crt
# Benchmarks read the local server's CPU time through its pid file.
export KPROBE_NEO4J_PID_FILE ?= $(or $(KPROBE_STATE),/tmp/kprobe-services)/neo4j/neo4j.pid

.PHONY: all build deps chdb otel kafka-up kafka-down neo4j-up neo4j-down vmlinux generate check-generate vet test test-short bench accuracy demo clean

all: build

## deps: Debian packages the build and tests need (clang only for `make generate`).
deps:
	@scripts/deps.sh

build:
	$(GO) build -o $(BIN)/ ./cmd/...

## chdb: fetch the embedded ClickHouse engine (libchdb.so) from the npm registry.
chdb:
	@scripts/chdb/fetch.sh

## otel: the stock OpenTelemetry clients the end-to-end tests record (PyPI, Maven Central).
otel:
	@scripts/otel/python.sh >/dev/null
	@scripts/otel/java.sh >/dev/null

kafka-up:
	@scripts/kafka/kafka.sh start

kafka-down:
	@scripts/kafka/kafka.sh stop

## neo4j-up: a local Neo4j 5.26 Community (jars from Maven Central) on 127.0.0.1:7687.
neo4j-up:
	@scripts/neo4j/neo4j.sh start >/dev/null

neo4j-down:
	@scripts/neo4j/neo4j.sh stop

## vmlinux: refresh the pinned bpf/headers/vmlinux.h from a kernel's BTF, on purpose only
## (VMLINUX_BTF=path to use another kernel's BTF). Never part of generate or test: build
## machines run different kernel builds, and the committed header is a pinned input.
vmlinux: deps
	bpf/gen_vmlinux.sh

## generate: the bpf2go objects and the protobuf code, from committed inputs only.
generate: deps
	$(GO) build -o .bin/protoc-gen-go google.golang.org/protobuf/cmd/protoc-gen-go
	$(GO) build -o .bin/protoc-gen-connect-go connectrpc.com/connect/cmd/protoc-gen-connect-go
	$(GO) generate ./...

## check-generate: CI fails when regeneration from the committed inputs changes the tree.
## VMLINUX_BTF points nowhere, so a step that read the running kernel's BTF would fail here.
check-generate: export VMLINUX_BTF := /nonexistent/kprobe-check-generate-reads-no-kernel-btf
check-generate: generate
	@scripts/check-generate.sh

vet:
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '_bpfel.go$$')); [ -z "$$out" ] || { echo "gofmt needed: $$out" >&2; exit 1; }

test-short:
	$(GO) test -short ./...

## test: everything, against the real kernel, real Kafka, real Neo4j and the real ClickHouse engine.
test: deps chdb otel kafka-up neo4j-up check-generate vet
	scripts/test.sh

## accuracy: top-1/top-3 diagnosis accuracy over RUNS (default 5) recordings of every incident (root).
accuracy: deps chdb
	scripts/accuracy.sh

## bench: the benchmarks cited in BENCHMARKS.md.
bench: deps chdb kafka-up neo4j-up
	scripts/bench.sh

## demo: record the bundled payment service with an injected incident on the embedded default.
demo: deps chdb build
	scripts/demo.sh

clean:
	rm -rf $(BIN) .bin
