// Command kprobe-tui is the SRE's workstation. Its scripting subcommands read the event
// log directly: `events` prints stored kernel events with the spans joined to them.
package main
