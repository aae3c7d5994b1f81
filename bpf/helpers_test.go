package bpf

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/kprobe/kprobe/bpf/bpftest"
)

var needKernel = bpftest.NeedKernel

func TestMain(m *testing.M) {
	code := m.Run()
	bpftest.Cleanup()
	os.Exit(code)
}

// session runs the Probes and collects every delivered event.
type session struct {
	r      *Probes
	cancel context.CancelFunc
	done   chan struct{}
	runErr chan error
	events []Event
}

func openProbes(tb testing.TB, opts Options) *Probes {
	tb.Helper()
	r, err := Open(context.Background(), opts)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { r.Close() })
	return r
}

func startSession(r *Probes) *session {
	ctx, cancel := context.WithCancel(context.Background())
	s := &session{r: r, cancel: cancel, done: make(chan struct{}), runErr: make(chan error, 1)}
	go func() {
		s.runErr <- r.Run(ctx)
	}()
	go func() {
		defer close(s.done)
		for b := range r.Batches() {
			s.events = append(s.events, b...)
		}
	}()
	return s
}

// stop ends Run (draining what is already in the ring) and returns the events.
func (s *session) stop(tb testing.TB) []Event {
	tb.Helper()
	s.cancel()
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		tb.Fatal("recorder did not stop")
	}
	if err := <-s.runErr; err != nil {
		tb.Fatalf("Run: %v", err)
	}
	return s.events
}

// loadedProgram is the program of p that pick names in the typed specs.
func loadedProgram(tb testing.TB, p *Probes, pick func(*bpfProgramSpecs) *ebpf.ProgramSpec) *ebpf.Program {
	tb.Helper()
	spec, err := loadBpf()
	if err != nil {
		tb.Fatal(err)
	}
	var specs bpfSpecs
	if err := spec.Assign(&specs); err != nil {
		tb.Fatal(err)
	}
	name := pick(&specs.bpfProgramSpecs).Name
	prog := p.coll.Programs[name]
	if prog == nil {
		tb.Fatalf("program %s not loaded", name)
	}
	return prog
}

func filterEvents(evs []Event, keep func(*Event) bool) []Event {
	var out []Event
	for i := range evs {
		if keep(&evs[i]) {
			out = append(out, evs[i])
		}
	}
	return out
}
