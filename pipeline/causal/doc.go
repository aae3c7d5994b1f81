// Package causal turns enriched kernel events and spans into a weighted causal graph:
// per business object (mapped from spans by configuration), which spans ran, what kernel
// resources delayed them and which process held them, each edge carrying the latency it
// explains, the rule that drew it, its evidence and how sure it is. Its rules are pure
// functions of events and spans (Analyze); Engine runs them on a stream, and the graph
// stores implement the Writer and Reader declared here.
package causal
