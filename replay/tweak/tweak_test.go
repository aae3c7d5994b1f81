package tweak

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"golang.org/x/sys/unix"
)

func TestParseOne(t *testing.T) {
	tests := []struct {
		spec string
		want *Tweak
	}{
		{"syscall=write,fd=5,nth=3..5,delay=200ms", &Tweak{Syscalls: []int{unix.SYS_WRITE}, FD: 5, Nth: Range{3, 5, 1}, Delay: 200 * time.Millisecond}},
		{"syscall=write,errno=EIO,nth=3", &Tweak{Syscalls: []int{unix.SYS_WRITE}, FD: -1, Nth: Range{3, 3, 1}, Errno: unix.EIO}},
		{"syscall=poll,timeout=50ms", &Tweak{Syscalls: []int{unix.SYS_POLL}, FD: -1, Timeout: Timeout{Set: 50 * time.Millisecond}}},
		{"syscall=epoll_wait|epoll_pwait,timeout=x0.1", &Tweak{Syscalls: []int{unix.SYS_EPOLL_WAIT, unix.SYS_EPOLL_PWAIT}, FD: -1, Timeout: Timeout{Factor: 0.1}}},
		// strace's spellings.
		{"syscall=read,error=ECONNRESET,when=2+", &Tweak{Syscalls: []int{unix.SYS_READ}, FD: -1, Nth: Range{2, 0, 1}, Errno: unix.ECONNRESET}},
		{"syscall=read,retval=0,when=1+2", &Tweak{Syscalls: []int{unix.SYS_READ}, FD: -1, Nth: Range{1, 0, 2}, HasRetval: true}},
		{"syscall=write,delay_enter=1500,delay_exit=2ms", &Tweak{Syscalls: []int{unix.SYS_WRITE}, FD: -1, Delay: 1500 * time.Microsecond, DelayExit: 2 * time.Millisecond}},
		{"syscall=openat,errno=2", &Tweak{Syscalls: []int{unix.SYS_OPENAT}, FD: -1, Errno: unix.ENOENT}},
		{" syscall=setsockopt , timeout=x10 ", &Tweak{Syscalls: []int{unix.SYS_SETSOCKOPT}, FD: -1, Timeout: Timeout{Factor: 10}}},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			got, err := ParseOne(tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			tt.want.Spec = tt.spec
			if diff := cmp.Diff(tt.want, got, cmpopts.IgnoreUnexported(Tweak{})); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct{ spec, want string }{
		{"", "empty"},
		{"syscall=wrte,delay=1s", `unknown syscall "wrte" (did you mean write?)`},
		{"syscall=write", "no action"},
		{"delay=1s", "no syscall="},
		{"syscall=write,delay=soon", "delay=soon: want a duration"},
		{"syscall=write,delay=-1", "negative delay"},
		{"syscall=write,errno=EWHAT", "unknown errno name"},
		{"syscall=write,errno=EIO,retval=1", "errno= and retval= together"},
		{"syscall=write,timeout=1s", "timeout= on write, which takes no timeout"},
		{"syscall=poll,timeout=x0", "want a factor"},
		{"syscall=poll,timeout=0s", "want a positive duration"},
		{"syscall=write,nth=0,delay=1s", "N ≥ 1"},
		{"syscall=write,nth=5..3,delay=1s", "range ends (3) before it starts (5)"},
		{"syscall=write,fd=-2,delay=1s", "want a file descriptor number"},
		{"syscall=write,fd=1,fd=2,delay=1s", "fd given twice"},
		{"syscall=write,bogus=1", `unknown key "bogus"`},
		{"syscall=write,delay", `"delay" is not key=value`},
		{"syscall=write,timing=fast", "timing= stands alone"},
		{"syscall=poll,timeout=5ms,errno=EIO", "timeout= with errno="},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			_, err := Parse([]string{tt.spec})
			if err == nil {
				t.Fatalf("accepted")
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.want) || !strings.HasPrefix(msg, "tweak ") || strings.Contains(msg, "\n") {
				t.Errorf("error %q: want one line starting 'tweak' and containing %q", msg, tt.want)
			}
		})
	}
}

func TestParseTiming(t *testing.T) {
	tests := []struct {
		spec string
		want Timing
		err  string
	}{
		{"timing=recorded", Timing{Mode: Recorded}, ""},
		{"timing=fast", Timing{Mode: Fast}, ""},
		{"timing=x2", Timing{Mode: Scaled, Factor: 2}, ""},
		{"timing=x1", Timing{Mode: Recorded}, ""},
		{"timing=slow", Timing{}, "want recorded, fast or a factor"},
		{"timing=x-1", Timing{}, "want recorded, fast or a factor"},
		{"timing=fast,syscall=read", Timing{}, "stands alone"},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			s, err := Parse([]string{tt.spec})
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, s.Timing); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	if _, err := Parse([]string{"timing=fast", "timing=x2"}); err == nil {
		t.Error("two timings accepted")
	}
}

func TestMatchCountsLikeStraceWhen(t *testing.T) {
	s, err := Parse([]string{"syscall=write,fd=5,nth=2..3,delay=1ms", "syscall=write,nth=2+2,errno=EIO"})
	if err != nil {
		t.Fatal(err)
	}
	type call struct {
		fd   int64
		want []string
	}
	calls := []call{
		{5, nil},                                          // fd5 #1, write #1
		{1, []string{s.Tweaks[1].Spec}},                   // write #2
		{5, []string{s.Tweaks[0].Spec}},                   // fd5 #2, write #3
		{5, []string{s.Tweaks[0].Spec, s.Tweaks[1].Spec}}, // fd5 #3, write #4
		{5, nil},                        // fd5 #4, write #5
		{7, []string{s.Tweaks[1].Spec}}, // write #6
	}
	for i, c := range calls {
		var got []string
		for _, tw := range s.Match(unix.SYS_WRITE, c.fd) {
			got = append(got, tw.Spec)
		}
		if diff := cmp.Diff(c.want, got); diff != "" {
			t.Errorf("call %d (fd %d) (-want +got):\n%s", i+1, c.fd, diff)
		}
	}
	if got := s.Match(unix.SYS_READ, 5); got != nil {
		t.Errorf("a read matched write tweaks: %v", got)
	}
	if u := s.Unmatched(); u != nil {
		t.Errorf("unmatched %v after every tweak matched", u)
	}
}

func TestTimeoutApply(t *testing.T) {
	if got := (Timeout{Factor: 0.1}).Apply(500 * time.Millisecond); got != 50*time.Millisecond {
		t.Errorf("x0.1 of 500ms = %v", got)
	}
	if got := (Timeout{Factor: 0.1}).Apply(-1); got != -1 {
		t.Errorf("x0.1 of infinite = %v, want infinite", got)
	}
	if got := (Timeout{Set: 50 * time.Millisecond}).Apply(-1); got != 50*time.Millisecond {
		t.Errorf("50ms over infinite = %v", got)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"syscall=write,fd=5,nth=3..5,delay=200ms", "timing=x2", "syscall=poll,timeout=x0.1", "syscall=read,when=1+2,error=EIO"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		s, err := Parse([]string{spec})
		if err != nil {
			if !strings.HasPrefix(err.Error(), "tweak ") {
				t.Fatalf("error without the spec: %v", err)
			}
			return
		}
		for _, tw := range s.Tweaks {
			if len(tw.Syscalls) == 0 {
				t.Fatalf("accepted a tweak without syscalls: %q", spec)
			}
			s.Match(tw.Syscalls[0], 3)
		}
	})
}
