// Package graphbench measures the causal graph stores side by side (`make bench`): the
// chain query on a graph of a million edges and the write rate, against the baseline of
// a plain UNWIND … MERGE into Neo4j. The benchmark graph is generated here.
package graphbench
