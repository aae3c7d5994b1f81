// Command dataset records the demo incident that ships in testdata/demo: the real eBPF
// agent records kprobe-demo (slow storage injected into settlement 4821) while this
// program receives the service's spans over OTLP, then both go into one dataset file.
// Run it as root on a machine with BTF, after `make build`:
//
//	go run ./scripts/dataset -o testdata/demo/incident-slow-storage.kpds
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/kprobe/kprobe/pipeline/dataset"
	"github.com/kprobe/kprobe/pipeline/otlp"
	"github.com/kprobe/kprobe/pipeline/span"
)

func main() {
	if err := run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "dataset:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	out := flag.String("o", "testdata/demo/incident-slow-storage.kpds", "the dataset to write")
	bin := flag.String("bin", "bin", "where kprobe-agent and kprobe-demo were built")
	settlements := flag.Int("settlements", 12, "settlements the demo processes")
	flag.Parse()
	node, err := os.Hostname()
	if err != nil {
		return err
	}
	var mu sync.Mutex
	var spans []span.Span
	rcv, err := otlp.NewReceiver(otlp.ReceiverOptions{GRPCAddr: "127.0.0.1:0", Node: node},
		func(_ context.Context, ss []span.Span) error {
			mu.Lock()
			defer mu.Unlock()
			spans = append(spans, ss...)
			return nil
		})
	if err != nil {
		return err
	}
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	go rcv.Run(rctx)
	grpcAddr, _ := rcv.Addrs()

	tmp, err := os.MkdirTemp("", "kprobe-dataset")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	events := filepath.Join(tmp, "events.jsonl")
	demo := []string{filepath.Join(*bin, "kprobe-demo"), "--otlp", grpcAddr, "--ledger", filepath.Join(tmp, "ledger.log"),
		"--settlements", fmt.Sprint(*settlements), "--first-settlement", "4815",
		"--incident", "slow-storage", "--incident-settlement", "4821"}
	// The flight recorder keeps every syscall of the demo with what it read, so the
	// incident can be replayed as well as investigated.
	args := append([]string{"record", "--flight-recorder", "--node", node, "--output", events, "--"}, demo...)
	cmd := exec.CommandContext(ctx, filepath.Join(*bin, "kprobe-agent"), args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("kprobe-agent record: %w", err)
	}
	rcv.Close()

	f, err := os.Open(events)
	if err != nil {
		return err
	}
	defer f.Close()
	evs, err := dataset.ReadJSONL(f)
	if err != nil {
		return err
	}
	mu.Lock()
	defer mu.Unlock()
	uname, _ := exec.Command("uname", "-r").Output()
	d := dataset.Dataset{
		Meta: dataset.Meta{Title: "kprobe-demo, slow storage injected into settlement 4821",
			RecordedAt: time.Now().UTC().Format(time.RFC3339), Kernel: strings.TrimSpace(string(uname)),
			Command: append([]string{"kprobe-agent"}, args...), Node: node},
		Spans: spans, Events: evs,
	}
	w, err := os.Create(*out)
	if err != nil {
		return err
	}
	if err := dataset.Write(w, d); err != nil {
		w.Close()
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	st, _ := os.Stat(*out)
	fmt.Fprintf(os.Stderr, "dataset: %d events, %d spans, %d bytes in %s\n", len(evs), len(spans), st.Size(), *out)
	return nil
}
