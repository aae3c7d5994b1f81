// Package eventlog is the ClickHouse event log: raw and enriched kernel events and the
// spans they were joined to, stored with one schema and one query text in either a
// ClickHouse server (clickhouse-go, native protocol) or the embedded engine (chDB,
// libchdb.so loaded on first open). Each table's columns are defined once (tables.go);
// its DDL, statements and codecs derive from them. It answers generic queries (events by
// key and time, totals per type, the top groups of spans by an attribute); what a
// settlement is, the use cases in package investigate know.
package eventlog
