package recording

import (
	"encoding/binary"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/kprobe/kprobe/pipeline/event"
)

const pid = 77

type rec struct {
	evs  []event.Event
	tick uint64
}

func (r *rec) add(tid uint32, name string, fd int32, ret int64, payload []byte, args ...int64) {
	r.tick += 10
	e := event.Event{Type: event.TypeSyscall, PID: pid, TID: tid, KtimeNs: r.tick, Syscall: name, FD: fd, Args: args, Payload: payload}
	if ret < 0 {
		e.Errno = int32(-ret)
	} else {
		e.Bytes = ret
	}
	r.evs = append(r.evs, e)
}

func (r *rec) open(path string, ret int64) {
	r.add(pid, "openat", -100, ret, nil, -100, 0, unix.O_RDONLY)
	r.evs[len(r.evs)-1].Path = path
}

func inet(ip [4]byte, port uint16) []byte {
	b := make([]byte, 16)
	binary.LittleEndian.PutUint16(b, unix.AF_INET)
	binary.BigEndian.PutUint16(b[2:], port)
	copy(b[4:], ip[:])
	return b
}

// TestFdIdentity: calls are tied to the resource their fd named when they ran, through
// closes, fd reuse, dups and accepts.
func TestFdIdentity(t *testing.T) {
	var r rec
	r.open("/etc/rates", 3)
	r.add(pid, "read", 3, 4, []byte("1.25"), 3, 0, 64)
	r.add(pid, "close", 3, 0, nil, 3)
	r.add(pid, "socket", -1, 3, nil, unix.AF_INET, unix.SOCK_STREAM, 0)
	r.add(pid, "connect", 3, -int64(unix.EINPROGRESS), inet([4]byte{10, 0, 0, 7}, 7000), 3, 0, 16)
	r.add(pid+1, "read", 3, 6, []byte("amount"), 3, 0, 64) // another thread
	r.add(pid, "dup2", 3, 7, nil, 3, 7)
	r.add(pid, "write", 7, 5, []byte("hello"), 7, 0, 5)
	r.add(pid, "accept4", 5, 6, inet([4]byte{10, 0, 0, 8}, 40000), 5, 0, 0, 0)
	r.add(pid, "read", 6, 2, []byte("hi"), 6, 0, 64)
	r.add(pid, "read", 0, 3, []byte("yes"), 0, 0, 64)
	r.add(pid, "fcntl", 6, 9, nil, 6, unix.F_DUPFD_CLOEXEC, 9)
	r.add(pid, "write", 9, 2, []byte("ok"), 9, 0, 2)
	// Another process's calls and other event types are not the recording.
	r.evs = append(r.evs, event.Event{Type: event.TypeSyscall, PID: pid + 100, Syscall: "read"}, event.Event{Type: event.TypeRead, PID: pid})

	got, err := Build(r.evs, pid)
	if err != nil {
		t.Fatal(err)
	}
	describe := func(res *Resource) []string {
		var out []string
		for _, c := range res.Input {
			out = append(out, "in "+string(c.Ev.Payload))
		}
		for _, c := range res.Output {
			out = append(out, "out "+string(c.Ev.Payload))
		}
		return append([]string{res.String()}, out...)
	}
	var all [][]string
	for _, res := range got.Resources {
		all = append(all, describe(res))
	}
	want := [][]string{
		{"file /etc/rates", "in 1.25"},
		{"socket 10.0.0.7:7000", "in amount", "out hello"},
		{"inherited fd 5"},
		{"socket 10.0.0.8:40000", "in hi", "out ok"},
		{"inherited fd 0", "in yes"},
	}
	if diff := cmp.Diff(want, all); diff != "" {
		t.Errorf("resources (-want +got):\n%s", diff)
	}
	if got.Skipped != 2 || len(got.Threads) != 2 || len(got.Connects) != 1 || len(got.Accepts) != 1 || got.Accepts[0].Made != got.Resources[3] {
		t.Errorf("skipped %d, threads %v, connects %d, accepts %d", got.Skipped, got.Threads, len(got.Connects), len(got.Accepts))
	}
	if c := got.Calls[4]; c.String() != "connect(3, 10.0.0.7:7000) = -EINPROGRESS" {
		t.Errorf("connect renders as %q", c)
	}
}

// TestPolledFDs: poll and select are tied to the resources of the fds they named.
func TestPolledFDs(t *testing.T) {
	var r rec
	r.add(pid, "socket", -1, 4, nil, unix.AF_INET, unix.SOCK_STREAM, 0)
	r.add(pid, "connect", 4, 0, inet([4]byte{127, 0, 0, 1}, 80), 4, 0, 16)
	pollfds := make([]byte, 16)
	binary.LittleEndian.PutUint32(pollfds, 4)
	binary.LittleEndian.PutUint16(pollfds[4:], unix.POLLIN)
	binary.LittleEndian.PutUint16(pollfds[6:], unix.POLLIN)
	binary.LittleEndian.PutUint32(pollfds[8:], 1)
	r.add(pid, "poll", -1, 1, pollfds, 0, 2, 1000)
	sets := make([]byte, 3*SetSlot)
	sets[0] = 1 << 4 // fd 4 readable
	r.add(pid, "select", -1, 1, sets, 5, 1, 0, 0, 0)
	got, err := Build(r.evs, pid)
	if err != nil {
		t.Fatal(err)
	}
	sock := got.Resources[0]
	for _, c := range got.Polls {
		if c.Fds[4] != sock || len(c.Fds) != 1 {
			t.Errorf("%s: fds %v, want fd 4 → %s only", c.Ev.Syscall, c.Fds, sock)
		}
	}
}

func TestBuildWithoutFlightEvents(t *testing.T) {
	_, err := Build([]event.Event{{Type: event.TypeRead, PID: pid}}, pid)
	if err == nil || !strings.Contains(err.Error(), "--flight-recorder") {
		t.Errorf("error %v, want one naming --flight-recorder", err)
	}
}

func TestSockaddrString(t *testing.T) {
	un := append([]byte{unix.AF_UNIX, 0}, "/run/x.sock\x00\x00"...)
	abstract := append([]byte{unix.AF_UNIX, 0, 0}, "bus"...)
	v6 := make([]byte, 28)
	binary.LittleEndian.PutUint16(v6, unix.AF_INET6)
	binary.BigEndian.PutUint16(v6[2:], 443)
	v6[23] = 1
	for _, tt := range []struct {
		in   []byte
		want string
	}{
		{inet([4]byte{10, 1, 2, 3}, 8080), "10.1.2.3:8080"},
		{v6, "[::1]:443"},
		{un, "unix:/run/x.sock"},
		{abstract, "unix:@bus"},
		{[]byte{1}, "none"},
		{[]byte{2, 0, 1}, "family 2"},
		{[]byte{99, 0}, "family 99"},
	} {
		if got := SockaddrString(tt.in); got != tt.want {
			t.Errorf("SockaddrString(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// FuzzBuild: a recording is outside input (the event log); any events give a recording
// or an error, never a panic.
func FuzzBuild(f *testing.F) {
	f.Add("openat", int32(-100), int64(3), []byte("x"), "read", int32(3), int64(1))
	f.Add("connect", int32(3), int64(-115), []byte{2, 0, 0, 80, 127, 0, 0, 1}, "poll", int32(-1), int64(1))
	f.Add("select", int32(-1), int64(1), []byte{0xff}, "dup2", int32(3), int64(9))
	f.Fuzz(func(t *testing.T, n1 string, fd1 int32, r1 int64, p []byte, n2 string, fd2 int32, r2 int64) {
		evs := []event.Event{
			{Type: event.TypeSyscall, PID: pid, TID: pid, KtimeNs: 1, Syscall: n1, FD: fd1, Bytes: r1, Payload: p, Args: []int64{int64(fd1), r1, 1 << 40}},
			{Type: event.TypeSyscall, PID: pid, TID: pid, KtimeNs: 2, Syscall: n2, FD: fd2, Bytes: r2, Payload: p, Args: []int64{int64(fd2), -1}},
		}
		if r1 < 0 {
			evs[0].Bytes, evs[0].Errno = 0, int32(-r1)
		}
		rec, err := Build(evs, pid)
		if err == nil {
			for _, c := range rec.Calls {
				_ = c.String()
			}
		}
	})
}
