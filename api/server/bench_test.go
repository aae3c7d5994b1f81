package server_test

import (
	"context"
	"slices"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/kprobe/kprobe/api/client"
	"github.com/kprobe/kprobe/api/live"
	"github.com/kprobe/kprobe/api/server"
	"github.com/kprobe/kprobe/pipeline/event"
	"github.com/kprobe/kprobe/pipeline/investigate"
	"github.com/kprobe/kprobe/pipeline/investigate/investigatetest"
)

// latencies records one duration per op and reports p50 and p95, so the API's overhead
// reads against the direct call's in the same run.
type latencies []time.Duration

func (l latencies) report(b *testing.B) {
	if len(l) == 0 {
		return
	}
	slices.Sort(l)
	b.ReportMetric(float64(l[len(l)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(l[len(l)*95/100].Nanoseconds()), "p95-ns")
}

// BenchmarkGetChain: the causal chain of the incident settlement, from the use-case layer
// directly (baseline) and through the API (gRPC over loopback TCP, and over the unix
// socket that local readers use), against the same Service. The difference is what the
// API adds (goal: ≤ 2 ms at p95).
func BenchmarkGetChain(b *testing.B) {
	svc := investigatetest.New(2000)
	ref := investigate.Ref{Kind: investigate.KindSettlement, ID: investigatetest.Incident}
	ctx := context.Background()
	run := func(b *testing.B, call func() error) {
		b.ReportAllocs()
		lat := make(latencies, 0, b.N)
		for b.Loop() {
			t0 := time.Now()
			if err := call(); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(t0))
		}
		lat.report(b)
	}
	b.Run("baseline=direct", func(b *testing.B) {
		run(b, func() error { _, err := svc.Chain(ctx, ref); return err })
	})
	for _, addr := range []string{"127.0.0.1:0", "unix:" + b.TempDir() + "/api.sock"} {
		name := "api=tcp"
		if addr[0] == 'u' {
			name = "api=unix"
		}
		b.Run(name, func(b *testing.B) {
			ln := serve(b, server.Options{Service: svc, RateLimit: -1}, server.ListenConfig{Addr: addr})
			c := dial(b, client.Options{Addr: ln.Addr()})
			if _, err := c.Chain(ctx, ref); err != nil { // connect before timing
				b.Fatal(err)
			}
			run(b, func() error { _, err := c.Chain(ctx, ref); return err })
		})
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkStreamLive: events written by the engine (batches of 1000, as the engine's
// writes) reach a StreamLive client over the unix socket; ns/op is per event, events/s is
// the rate one subscriber kept up with, cpu-ns/event what that cost. missed must stay 0.
func BenchmarkStreamLive(b *testing.B) {
	const batch = 1000
	hub := live.NewHub()
	ln := serve(b, server.Options{Service: investigatetest.New(0), Live: hub, LiveBuffer: 4096, RateLimit: -1}, server.ListenConfig{Addr: "unix:" + b.TempDir() + "/api.sock"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := dial(b, client.Options{Addr: ln.Addr()}).Live(ctx, client.LiveFilter{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	evs := make([]event.Event, batch)
	for i := range evs {
		evs[i] = event.Event{ID: uint64(i), TsNs: int64(i), Node: "node-a", PID: 4242, TID: 4243, Comm: "settlement-svc",
			Type: event.TypeWrite, DurNs: 1500, Syscall: "write", FD: 7, Bytes: 512, TraceID: "4bf92f3577b34da6a3ce929d0e0e4736",
			SpanID: "00f067aa0ba902b7", Service: "settlement-svc", SpanName: "ledger.post", Join: "tid",
			Attrs: map[string]string{"settlement.id": "4821"}}
	}
	n := (b.N + batch - 1) / batch * batch
	var missed atomic.Uint64
	done := make(chan error, 1)
	go func() {
		got := 0
		for {
			u, err := s.Next()
			if err != nil {
				done <- err
				return
			}
			missed.Store(u.Missed)
			// Stop once every event arrived or was counted missed.
			if got += len(u.Events); got+int(u.Missed) >= n {
				done <- nil
				return
			}
		}
	}()
	b.ReportAllocs()
	start, cpu0 := time.Now(), cpuTime()
	b.ResetTimer()
	for i := 0; i < n; i += batch {
		hub.Publish(evs, nil)
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64(n)/time.Since(start).Seconds(), "events/s")
	// CPU per event (server and client together, this process's user+system time) says
	// what rate two idle cores would keep up with, whatever else shares the machine.
	b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(n), "cpu-ns/event")
	b.ReportMetric(float64(missed.Load()), "missed")
}
