package bpf

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// runFlight records cmd (started held, its pid selected before it runs) and returns what
// the flight recorder saw of it.
func runFlight(t *testing.T, opts FlightOptions, name string, args ...string) ([]FlightCall, FlightStats) {
	t.Helper()
	needKernel(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.Command("/bin/sh", "-c", `read _; exec "$0" "$@"`, name)
	cmd.Args = append(cmd.Args, args...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	opts.PIDs = append(opts.PIDs, uint32(cmd.Process.Pid))
	f, err := OpenFlight(ctx, opts)
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatal(err)
	}
	defer f.Close()
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- f.Run(runCtx) }()
	var calls []FlightCall
	collected := make(chan struct{})
	go func() {
		for b := range f.Batches() {
			calls = append(calls, b...)
		}
		close(collected)
	}()
	stdin.Write([]byte("go\n"))
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	// The last records are in the ring once the process is gone; Flush drains them.
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	<-collected
	return calls, f.Stats()
}

func TestFlightRecordsAFileRead(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "input.txt")
	content := strings.Repeat("settlement 4821 ", 10000) // 160 KB: more than one chunk and the default limit
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	calls, st := runFlight(t, FlightOptions{PayloadBytes: 100000}, "cat", path)
	var open *FlightCall
	var read []byte
	var truncated uint64
	for i := range calls {
		c := &calls[i]
		if c.Path == path {
			open = c
		}
		if open != nil && c.Nr == 0 && c.Args[0] == uint64(open.Ret) && c.Ret > 0 {
			read = append(read, c.Payload...)
			truncated += c.Truncated
		}
	}
	if open == nil {
		t.Fatalf("no openat of %s among %d calls (stats %+v)", path, len(calls), st)
	}
	if open.Ret < 0 {
		t.Fatalf("openat failed: %d", open.Ret)
	}
	if got := uint64(len(read)) + truncated; got != uint64(len(content)) {
		t.Errorf("reads kept %d bytes and truncated %d, want %d in all", len(read), truncated, len(content))
	}
	if !strings.HasPrefix(content, string(read[:min(len(read), 1000)])) {
		t.Errorf("payload is not the file's bytes: %q", read[:min(len(read), 40)])
	}
	if st.Calls != uint64(len(calls)) || st.DecodeErrors != 0 || st.LostCalls != 0 {
		t.Errorf("stats %+v for %d calls", st, len(calls))
	}
}
