// Command kprobe-demo is the bundled demo payment service: it processes payments into
// settlements, traced with the OpenTelemetry SDK, and can inject one kernel-level
// incident (slow storage, a CPU hog, memory pressure, a slow clearing peer) into one
// settlement, so that kprobe has something real to explain.
package main
