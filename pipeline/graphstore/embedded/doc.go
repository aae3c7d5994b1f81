// Package embedded keeps the causal graph in process for the one-machine default: an
// in-memory adjacency (nodes and edges by index, outgoing lists, interned names) rebuilt
// at open from an append-only log under --data (Dir), one CRC-checked record per Write.
//
// Why not edge tables in the chDB event log with a recursive CTE, the other candidate:
// measured here (2 shared cores, 1 M edges, ReplacingMergeTree ordered by source), the
// recursive CTE answered a chain query in p50 372 ms / p95 1.05 s, twenty to fifty times
// the 20 ms goal, because each step is a hash join over the edge table; walking level by
// level with `src IN (...)` cost 3–4 ms per level, so 15–30 ms for a chain, on the one
// chDB connection the event log's inserts also queue on. In memory a chain is
// microseconds, writes are an append plus map updates, and a reader (kprobe-tui) can open
// the log read-only while the agent writes, which chDB's one-process lock forbids. The
// cost is memory (about 200 bytes per node or edge; BenchmarkChainQuery reports it) and
// the replay at open.
package embedded
