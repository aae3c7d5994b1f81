// Package datadir reads a --data directory that a recorder may be writing: the embedded
// engine admits one process at a time, so while 'kprobe-agent standalone' holds the
// directory, readers go through the API socket it serves inside it; otherwise they open
// the stores themselves for a burst of calls (released a second after the last), so a
// recorder that starts later is never locked out for longer than that.
package datadir
