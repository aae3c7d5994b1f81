// Package graphstore holds what every causal graph store shares, so that Neo4j and the
// embedded store accept the same writes and rank causes the same way: the validation and
// de-duplication of a written graph, and the order of ranked paths. The stores themselves
// are in its sub-packages; storetest is the contract suite they all pass.
package graphstore
