// Package tweak is the one grammar, shared by the replay command and the TUI, for changing
// a replay before it runs: an artificial delay, an injected failure or return value, a
// changed timeout, and the pace of the recorded timing. Where it overlaps strace's
// `-e inject=` (error=, retval=, delay_enter=, delay_exit=, when=) it means the same thing.
//
//	syscall=write,fd=5,nth=3..5,delay=200ms   delay the 3rd to 5th write to fd 5
//	syscall=write,errno=EIO,nth=3             the 3rd write fails with EIO
//	syscall=poll,timeout=50ms                 poll waits at most 50 ms
//	syscall=epoll_wait,timeout=x0.1           a tenth of the timeout the program asks for
//	timing=recorded|fast|x2                   production durations, no waiting, or scaled
package tweak
