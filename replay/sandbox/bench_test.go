package sandbox

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// serveFD3 answers every 64-byte read of fd 3 and lets the rest run: the sandbox's own
// cost for a served call, without the replay engine's bookkeeping.
type serveFD3 struct{ data [64]byte }

func (h *serveFD3) Started(int)                 {}
func (h *serveFD3) Stop(*Stop)                  {}
func (h *serveFD3) Spawned(int, int, bool)      {}
func (h *serveFD3) Exited(int, unix.WaitStatus) {}
func (h *serveFD3) Call(l *Listener, c *Call) {
	if c.Nr != unix.SYS_READ || c.Arg(0) != 3 || c.Args[2] < 64 {
		l.Continue(c)
		return
	}
	if !l.Valid(c.ID) || WriteMemory(c.TID, c.Args[1], h.data[:]) != nil {
		l.Fail(c, unix.EFAULT)
		return
	}
	l.Return(c, 64)
}

// BenchmarkSandboxServedRead is the sandbox's cost per served read (ns/call, measured by
// the workload itself), beside the same read run natively.
func BenchmarkSandboxServedRead(b *testing.B) {
	needRoot(b)
	loop := filepath.Join(b.TempDir(), "loop")
	if out, err := exec.Command("cc", "-O2", "-static", "-o", loop, "../testdata/loop.c").CombinedOutput(); err != nil {
		b.Fatalf("compiling the workload: %v\n%s", err, out)
	}
	per := func(b *testing.B, out string) {
		v, err := strconv.ParseFloat(strings.TrimSpace(out), 64)
		if err != nil {
			b.Fatalf("workload printed %q", out)
		}
		b.ReportMetric(v, "ns/call")
	}
	b.Run("baseline_native", func(b *testing.B) {
		out, err := exec.Command(loop, "read", "/dev/zero", strconv.Itoa(b.N)).Output()
		if err != nil {
			b.Fatal(err)
		}
		per(b, string(out))
	})
	b.Run("go_supervisor", func(b *testing.B) {
		var out bytes.Buffer
		outR, outW, err := osPipe()
		if err != nil {
			b.Fatal(err)
		}
		done := make(chan struct{})
		go func() { out.ReadFrom(outR); close(done) }()
		b.ReportAllocs()
		_, err = Run(context.Background(), Config{Path: loop, Args: []string{"loop", "read", "/dev/zero", strconv.Itoa(b.N)},
			Stdout: outW, Notify: []int{unix.SYS_READ}}, &serveFD3{})
		outW.Close()
		<-done
		if err != nil {
			b.Fatal(err)
		}
		per(b, out.String())
	})
}
