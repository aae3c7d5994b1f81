package server_test

import (
	"context"
	"testing"

	"connectrpc.com/connect"
	"github.com/google/go-cmp/cmp"

	"github.com/kprobe/kprobe/api/client"
	"github.com/kprobe/kprobe/api/server"
	"github.com/kprobe/kprobe/pipeline/investigate"
	"github.com/kprobe/kprobe/pipeline/investigate/investigatetest"
)

// TestGetReport: the report over the API is the report the use case writes locally.
func TestGetReport(t *testing.T) {
	svc := investigatetest.New(200)
	const source = "--api kprobe.internal:8443"
	ln := serve(t, server.Options{Service: svc, Source: source}, server.ListenConfig{})
	c := dial(t, client.Options{Addr: ln.Addr()})
	ctx := context.Background()
	ref := investigate.Ref{Kind: investigate.KindSettlement, ID: investigatetest.Incident}

	got, err := c.Report(ctx, ref, 3)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := investigate.BuildReport(ctx, svc, ref, investigate.ReportOptions{EvidenceRows: 3, Source: source})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(string(rep.Markdown()), string(got)); d != "" {
		t.Errorf("report (-local +api):\n%s", d)
	}
	_, err = c.Report(ctx, investigate.Ref{Kind: investigate.KindSettlement, ID: "no-such"}, 0)
	wantCode(t, "report of an unknown settlement", err, connect.CodeNotFound)
}
