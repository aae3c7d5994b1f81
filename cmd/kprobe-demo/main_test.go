package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kprobe/kprobe/pipeline/otlp"
	"github.com/kprobe/kprobe/pipeline/span"
)

// TestMain lets the test binary be the demo's helper processes too (they re-execute the
// running program in a role).
func TestMain(m *testing.M) {
	if role := os.Getenv(roleEnv); role != "" {
		if _, err := runRole(context.Background(), role, os.Args[1:], os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// collector is an OTLP receiver on a loopback port that keeps what it is sent.
type collector struct {
	addr  string
	mu    sync.Mutex
	spans []span.Span
}

func startCollector(t *testing.T) *collector {
	t.Helper()
	c := &collector{}
	r, err := otlp.NewReceiver(otlp.ReceiverOptions{GRPCAddr: "127.0.0.1:0"}, func(ctx context.Context, s []span.Span) error {
		c.mu.Lock()
		c.spans = append(c.spans, s...)
		c.mu.Unlock()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	c.addr, _ = r.Addrs()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("receiver: %v", err)
		}
	})
	return c
}

func (c *collector) named(name string) []span.Span {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []span.Span
	for _, s := range c.spans {
		if s.Name == name {
			out = append(out, s)
		}
	}
	return out
}

func runDemo(t *testing.T, args ...string) string {
	t.Helper()
	var out strings.Builder
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	args = append([]string{"--ledger", t.TempDir() + "/ledger.csv"}, args...)
	if err := run(ctx, args, strings.NewReader(""), &out); err != nil {
		t.Fatalf("run %v: %v", args, err)
	}
	return out.String()
}

func TestSpans(t *testing.T) {
	c := startCollector(t)
	out := runDemo(t, "--otlp", c.addr, "--settlements", "2", "--payments-per-settlement", "2", "--first-settlement", "4821", "--first-payment", "98721")
	if n := strings.Count(out, "\n"); n != 2 || !strings.HasPrefix(out, "settlement=4821 payments=2 duration_ms=") || !strings.Contains(out, "trace_id=") {
		t.Errorf("stdout = %q, want two summary lines starting with settlement 4821", out)
	}

	host, _ := os.Hostname()
	settlements := c.named("settlement.process")
	if len(settlements) != 2 {
		t.Fatalf("got %d settlement.process spans, want 2", len(settlements))
	}
	slices.SortFunc(settlements, func(a, b span.Span) int { return int(a.StartNs - b.StartNs) })
	s := settlements[0]
	if s.PID != uint32(os.Getpid()) || s.Host != host || s.Service != "settlement-svc" || s.TID == 0 {
		t.Errorf("settlement span pid %d host %q service %q tid %d; want pid %d host %q, a tid", s.PID, s.Host, s.Service, s.TID, os.Getpid(), host)
	}
	if diff := cmp.Diff(map[string]string{"settlement.id": "4821", "payment.count": "2"}, s.Attrs); diff != "" {
		t.Errorf("settlement attrs (-want +got):\n%s", diff)
	}

	var gotPayments []string
	children := map[string]int{}
	for _, name := range []string{"payment.validate", "orderbook.match", "ledger.write", "clearing.confirm"} {
		for _, ch := range c.named(name) {
			if ch.TID != s.TID || ch.PID != s.PID {
				t.Errorf("%s on pid %d tid %d, want the worker's %d/%d", name, ch.PID, ch.TID, s.PID, s.TID)
			}
			if ch.ParentID == s.SpanID {
				children[name]++
				if ch.StartNs < s.StartNs || ch.EndNs > s.EndNs {
					t.Errorf("%s [%d,%d] outside its settlement [%d,%d]", name, ch.StartNs, ch.EndNs, s.StartNs, s.EndNs)
				}
			}
			if name == "payment.validate" {
				gotPayments = append(gotPayments, ch.Attrs["payment.id"])
			}
		}
	}
	slices.Sort(gotPayments)
	if diff := cmp.Diff([]string{"PAY-98721", "PAY-98722", "PAY-98723", "PAY-98724"}, gotPayments); diff != "" {
		t.Errorf("payment ids (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]int{"payment.validate": 2, "orderbook.match": 1, "ledger.write": 1, "clearing.confirm": 1}, children); diff != "" {
		t.Errorf("children of settlement 4821 (-want +got):\n%s", diff)
	}
	// Both settlements fall in one clearing window, the parent of each.
	windows := c.named("clearing.window")
	if len(windows) != 1 || windows[0].Attrs["clearing.window"] != "CW-4821" {
		t.Fatalf("clearing windows %+v, want one CW-4821", windows)
	}
	for _, s := range settlements {
		if s.ParentID != windows[0].SpanID || s.TraceID != windows[0].TraceID {
			t.Errorf("settlement %s not in the clearing window", s.Attrs["settlement.id"])
		}
	}
	for _, o := range c.named("orderbook.match") {
		if !strings.HasPrefix(o.Attrs["order.id"], "ORD-482") {
			t.Errorf("order book op with order.id %q", o.Attrs["order.id"])
		}
	}
}

// TestIncidentLastsItsTime: each incident holds its settlement up for at least about the
// incident's duration (what the incident is, kprobe's accuracy tests judge; a bound on the
// others would test the machine's speed).
func TestIncidentLastsItsTime(t *testing.T) {
	const d = 150 * time.Millisecond
	for _, incident := range incidents[1:] {
		t.Run(incident, func(t *testing.T) {
			c := startCollector(t)
			out := runDemo(t, "--otlp", c.addr, "--settlements", "4", "--payments-per-settlement", "3",
				"--first-settlement", "4819", "--incident", incident, "--incident-settlement", "4821",
				"--incident-duration", d.String())
			durations := map[string]time.Duration{}
			for _, s := range c.named("settlement.process") {
				durations[s.Attrs["settlement.id"]] = time.Duration(s.EndNs - s.StartNs)
			}
			if len(durations) != 4 {
				t.Fatalf("got settlements %v, want 4", durations)
			}
			if durations["4821"] < d*9/10 {
				t.Errorf("settlement 4821 took %v with a %v %s incident", durations["4821"], d, incident)
			}
			if n := strings.Count(out, " incident="+incident); n != 1 || !strings.Contains(out, "settlement=4821 ") {
				t.Errorf("the summary names the incident %d times, want once, on 4821:\n%s", n, out)
			}
		})
	}
}

func TestStartSignal(t *testing.T) {
	pr, pw := io.Pipe()
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(context.Background(), []string{"--otlp", "", "--settlements", "1", "--start-signal", "--ledger", t.TempDir() + "/l"}, pr, out)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), "ready pid=") {
		if time.Now().After(deadline) {
			t.Fatalf("no ready line; stdout %q", out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	if strings.Contains(out.String(), "settlement=") {
		t.Fatalf("worked before the start signal: %q", out.String())
	}
	fmt.Fprintln(pw)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("ready pid=%d\nsettlement=4819 ", os.Getpid()); !strings.HasPrefix(out.String(), want) {
		t.Errorf("stdout = %q, want prefix %q", out.String(), want)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestParseConfig(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string
		check   func(config) bool
	}{
		{name: "defaults", check: func(c config) bool { return c.otlp == "127.0.0.1:4317" && c.settlements == 5 && c.incident == "none" }},
		{name: "endpoint from the environment", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"},
			check: func(c config) bool { return c.otlp == "http://collector:4317" }},
		{name: "export disabled", args: []string{"--otlp", ""}, check: func(c config) bool { return c.otlp == "" }},
		{name: "unknown incident", args: []string{"--incident", "fire"}, wantErr: "--incident"},
		{name: "incident settlement out of range", args: []string{"--incident", "cpu-hog", "--incident-settlement", "1"}, wantErr: "not among settlements"},
		{name: "no settlements", args: []string{"--settlements", "0"}, wantErr: "--settlements"},
		{name: "stray argument", args: []string{"now"}, wantErr: "unexpected arguments"},
		{name: "unknown flag", args: []string{"--bogus"}, wantErr: "flag provided but not defined: -bogus (kprobe-demo --help lists the flags)"},
		{name: "bad number", args: []string{"--settlements", "x"}, wantErr: `invalid value "x" for flag -settlements`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseConfig(tt.args, env(tt.env))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(c) {
				t.Errorf("config %+v", c)
			}
		})
	}
}

// TestHelp: --help prints the usage on stdout and succeeds.
func TestHelp(t *testing.T) {
	for _, arg := range []string{"--help", "-h"} {
		var out strings.Builder
		if err := run(context.Background(), []string{arg}, strings.NewReader(""), &out); err != nil {
			t.Fatalf("%s: %v", arg, err)
		}
		for _, want := range []string{"usage: kprobe-demo", "-settlements", "-incident"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("%s printed no %q:\n%s", arg, want, out.String())
			}
		}
	}
}
