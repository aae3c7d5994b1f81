// Package cli is how every kprobe command reads its command line: a bad flag or a stray
// argument is one line with a hint, -h prints the usage, and a KPROBE_ environment
// fallback that does not parse is an error naming the variable, never a silent default.
package cli
