// Package replay will hold the ptrace sandbox that re-runs a recorded process and serves
// it the syscall results from the event log, with tweaks (delay, timeout, failure).
// The recorder already captures what it needs: per-syscall results and opt-in payloads.
package replay
