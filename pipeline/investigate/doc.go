// Package investigate is the use-case layer: the questions an SRE asks (the slowest or
// failed settlements, the causal chain of one, the kernel events behind a node, what a
// replay needs, the incident report), answered the same way for the CLI, the TUI and the
// API. It is the one place that knows what a "settlement" is beyond a span attribute;
// the stores below it answer generic queries.
package investigate
