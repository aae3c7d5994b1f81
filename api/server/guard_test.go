package server_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"connectrpc.com/connect"

	"github.com/kprobe/kprobe/api/client"
	kprobev1 "github.com/kprobe/kprobe/api/kprobe/v1"
	"github.com/kprobe/kprobe/api/kprobe/v1/kprobev1connect"
	"github.com/kprobe/kprobe/api/server"
	"github.com/kprobe/kprobe/pipeline/investigate"
)

func TestRateLimit(t *testing.T) {
	f := newFake(10)
	// A bucket of 3 that refills once in 1000 s: the fourth call in a row is refused.
	ln := serve(t, server.Options{Service: f, RateLimit: 0.001, RateBurst: 3}, server.ListenConfig{TokenFile: tokenFile(t)})
	ctx := context.Background()
	c := dial(t, client.Options{Addr: ln.Addr(), Token: tokenA})
	for i := range 3 {
		if _, err := c.Subjects(ctx, investigate.SubjectQuery{Kind: "settlement"}); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	_, err := c.Subjects(ctx, investigate.SubjectQuery{Kind: "settlement"})
	wantCode(t, "fourth call", err, connect.CodeResourceExhausted)
	// Callers are limited one by one: another token still gets through.
	if _, err := dial(t, client.Options{Addr: ln.Addr(), Token: tokenB}).Subjects(ctx, investigate.SubjectQuery{Kind: "settlement"}); err != nil {
		t.Errorf("another caller: %v", err)
	}
}

func TestRequestSizeLimit(t *testing.T) {
	f := newFake(10)
	ln := serve(t, server.Options{Service: f, ReadMaxBytes: 4 << 10}, server.ListenConfig{})
	rpc := kprobev1connect.NewInvestigationServiceClient(&http.Client{Transport: h2c()}, "http://"+ln.Addr(), connect.WithGRPC())
	ctx := context.Background()
	small := &kprobev1.GetChainRequest{Ref: &kprobev1.GetChainRequest_SettlementId{SettlementId: "4821"}}
	if _, err := rpc.GetChain(ctx, connect.NewRequest(small)); err != nil {
		t.Fatal(err)
	}
	before := f.Calls()
	big := &kprobev1.GetChainRequest{Ref: &kprobev1.GetChainRequest_SettlementId{SettlementId: strings.Repeat("9", 8<<10)}}
	_, err := rpc.GetChain(ctx, connect.NewRequest(big))
	wantCode(t, "8 KiB request", err, connect.CodeResourceExhausted)
	if f.Calls() != before {
		t.Error("the oversized request reached the service")
	}
}
