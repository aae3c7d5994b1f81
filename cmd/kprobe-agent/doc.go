// Command kprobe-agent is kprobe's headless side: `record` runs the eBPF recorder on a
// node, `engine` correlates and stores what the recorders publish, and `standalone` runs
// both in one process on the embedded stores.
package main
