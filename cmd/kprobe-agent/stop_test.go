package main

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// startTestStop runs a bounded stop with a short grace, recording what it calls.
func startTestStop(ctx context.Context, drain time.Duration) (b *boundedStop, stderr *e2eBuffer, stopped, deadline chan struct{}, exited chan int, ran chan struct{}) {
	stderr = &e2eBuffer{}
	b = newBoundedStop(slog.New(slog.DiscardHandler), stderr)
	b.grace = 50 * time.Millisecond
	stopped, deadline, exited, ran = make(chan struct{}), make(chan struct{}), make(chan int, 1), make(chan struct{})
	b.exit = func(code int) { exited <- code }
	go func() {
		defer close(ran)
		b.run(ctx, drain, func() { close(stopped) }, func() { close(deadline) })
	}()
	return b, stderr, stopped, deadline, exited, ran
}

// TestBoundedStopStuck: the clock starts at the stop; the drain timeout later atDeadline
// runs, and a stop still stuck the grace after that exits with status 1, naming its step.
func TestBoundedStopStuck(t *testing.T) {
	const drain = 100 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	b, stderr, stopped, deadline, exited, _ := startTestStop(ctx, drain)
	b.at("writing what the engine holds")
	start := time.Now()
	cancel()
	<-stopped
	<-deadline
	if took := time.Since(start); took < drain {
		t.Errorf("atDeadline ran %v after the stop, before the %v drain timeout", took, drain)
	}
	if code := <-exited; code != 1 {
		t.Errorf("exit(%d), want exit(1)", code)
	}
	if took := time.Since(start); took < drain+b.grace {
		t.Errorf("exited %v after the stop, before the drain timeout and the grace (%v)", took, drain+b.grace)
	}
	if got := stderr.String(); !strings.Contains(got, "still writing what the engine holds") {
		t.Errorf("exit line does not name the step: %q", got)
	}
}

// TestBoundedStopInTime: a stop that ends before its drain timeout neither cuts the
// recorder's backlog nor exits.
func TestBoundedStopInTime(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	b, _, stopped, deadline, exited, ran := startTestStop(ctx, time.Hour)
	cancel()
	<-stopped
	b.release()
	<-ran
	select {
	case <-deadline:
		t.Error("atDeadline ran for a stop that ended in time")
	case code := <-exited:
		t.Errorf("exit(%d) for a stop that ended in time", code)
	default:
	}
}
