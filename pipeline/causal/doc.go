// Package causal turns enriched kernel events and spans into a weighted causal graph:
// per business object, which spans ran, what kernel resources delayed them and which
// process held them, each edge carrying the latency it explains, the rule that drew it,
// its evidence and how sure it is. Its rules are pure functions of events and spans; the
// graph stores (Neo4j, embedded) implement the interfaces declared here.
package causal
