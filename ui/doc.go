// Package ui will hold the bubbletea workstation (search, causal chain, kernel events,
// replay panes, export). Until it lands, cmd/kprobe-tui offers the non-interactive
// subcommands that read the event log.
package ui
