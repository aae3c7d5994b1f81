// Package sandbox runs a program under a seccomp filter and ptrace at once: the syscalls
// chosen to be answered stop in a supervisor (seccomp user notification, with the
// kernel's sync wake-up), those whose registers must change stop in a tracer
// (SECCOMP_RET_TRACE), everything else runs natively. The tracer follows the program's
// threads, children and execs and passes its signals through. The filter is installed
// by this binary started again as a shim (Go offers no hook between fork and exec), and
// its listener is taken from the stopped shim with pidfd_getfd.
package sandbox
