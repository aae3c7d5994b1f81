// Command kprobe-demo is the bundled demo payment service: it processes payments into
// settlements within clearing windows, matches orders, posts to a ledger and confirms
// each settlement with a bank through a clearing gateway (two TCP hops, each its own
// process), traced with the OpenTelemetry SDK. It can inject one kernel-level incident
// into one settlement (slow storage, a higher-priority CPU hog on its core, a page-fault
// storm, a slow bank behind the gateway, the ledger lock held by its reconciler), so
// that kprobe has something real to explain.
package main
