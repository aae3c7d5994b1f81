// Package sysno names the x86_64 syscalls: the one table the replay engine, its tweak
// grammar and its trace share.
package sysno
