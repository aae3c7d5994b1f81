// Package neo4j keeps the causal graph in a Neo4j 5 server (the cluster shape): every node
// carries the label KprobeNode (unique on _id) beside its own label, writes are batched
// UNWIND … MERGE statements so re-writing never duplicates, and the chain query is one
// variable-length path match, planned at start so the first investigation is not the slow one.
package neo4j
