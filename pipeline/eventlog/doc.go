// Package eventlog is the ClickHouse event log: raw and enriched kernel events, stored with
// one schema and one query text in either a ClickHouse server (clickhouse-go, native
// protocol) or the embedded engine (chDB, libchdb.so loaded on first open).
package eventlog
