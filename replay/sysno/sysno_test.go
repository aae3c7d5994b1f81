package sysno

import (
	"testing"

	"golang.org/x/sys/unix"
)

func TestNames(t *testing.T) {
	for _, tc := range []struct {
		name string
		nr   int
	}{{"read", unix.SYS_READ}, {"write", unix.SYS_WRITE}, {"openat", unix.SYS_OPENAT}, {"epoll_pwait2", unix.SYS_EPOLL_PWAIT2}, {"clock_nanosleep", unix.SYS_CLOCK_NANOSLEEP}} {
		if got, ok := Number(tc.name); !ok || got != tc.nr {
			t.Errorf("Number(%q) = %d, %v; want %d", tc.name, got, ok, tc.nr)
		}
		if got := Name(tc.nr); got != tc.name {
			t.Errorf("Name(%d) = %q, want %q", tc.nr, got, tc.name)
		}
	}
	if _, ok := Number("wrte"); ok {
		t.Error("an unknown name was found")
	}
	if got := Name(9999); got != "syscall_9999" {
		t.Errorf("Name(9999) = %q", got)
	}
}
