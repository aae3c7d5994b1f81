package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/kprobe/kprobe/pipeline/otlp"
)

// serveOTLP starts the OTLP receiver feeding spans to sink, when an address is given.
// stop ends it and waits for it; the receiver outlives ctx until then, so spans sent while
// the engine drains still arrive.
func serveOTLP(ctx context.Context, log *slog.Logger, grpcAddr, httpAddr string, sink otlp.Sink) (stop func(), err error) {
	if grpcAddr == "" && httpAddr == "" {
		return func() {}, nil
	}
	recv, err := otlp.NewReceiver(otlp.ReceiverOptions{Logger: log, GRPCAddr: grpcAddr, HTTPAddr: httpAddr}, sink)
	if err != nil {
		return nil, fmt.Errorf("starting OTLP receiver: %w", err)
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := recv.Run(rctx); err != nil {
			log.Error("OTLP receiver stopped", "err", err)
		}
	}()
	return func() { cancel(); <-done }, nil
}
