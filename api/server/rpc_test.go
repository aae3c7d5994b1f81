package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	"github.com/kprobe/kprobe/api/client"
	kprobev1 "github.com/kprobe/kprobe/api/kprobe/v1"
	"github.com/kprobe/kprobe/api/kprobe/v1/kprobev1connect"
	"github.com/kprobe/kprobe/api/server"
	"github.com/kprobe/kprobe/pipeline/event"
	"github.com/kprobe/kprobe/pipeline/investigate"
)

// eventOpts compares events, whose addresses are netip.Addr.
var eventOpts = cmpopts.EquateComparable(netip.Addr{})

func TestClientIsTheService(t *testing.T) {
	f := newFake(97)
	ln := serve(t, server.Options{Service: f}, server.ListenConfig{})
	c := dial(t, client.Options{Addr: ln.Addr()})
	ctx := context.Background()
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}

	subs, err := c.Subjects(ctx, investigate.SubjectQuery{Kind: "settlement", Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(f.subjects[:2], subs); d != "" {
		t.Errorf("Subjects (-want +got):\n%s", d)
	}
	failed, err := c.Subjects(ctx, investigate.SubjectQuery{Kind: "settlement", Limit: 10, FailedOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(f.subjects[:1], failed); d != "" {
		t.Errorf("Subjects failed only (-want +got):\n%s", d)
	}

	ch, err := c.Chain(ctx, investigate.Ref{Kind: "settlement", ID: "4821"})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(f.chains["settlement/4821"], ch); d != "" {
		t.Errorf("Chain (-want +got):\n%s", d)
	}

	evs, err := c.Events(ctx, investigate.EventQuery{PID: 7})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(f.events, evs, eventOpts); d != "" {
		t.Errorf("Events (-want +got):\n%s", d)
	}
	mine, err := c.Events(ctx, investigate.EventQuery{Ref: investigate.Ref{Kind: "settlement", ID: "4821"}, Limit: 7})
	if err != nil {
		t.Fatal(err)
	}
	if len(mine) != 7 || mine[6].ID != 1018 {
		t.Errorf("Events of settlement 4821, limit 7: got %d, last %v; want 7 ending at event 1018", len(mine), mine)
	}

	log, err := c.SyscallLog(ctx, investigate.SyscallLogQuery{PID: 7})
	if err != nil {
		t.Fatal(err)
	}
	var want []event.Event
	for _, e := range f.events {
		if e.Type == event.TypeRead || e.Type == event.TypeWrite {
			want = append(want, e)
		}
	}
	if d := cmp.Diff(want, log, eventOpts); d != "" {
		t.Errorf("SyscallLog (-want +got):\n%s", d)
	}
}

func TestQueryEventsPages(t *testing.T) {
	f := newFake(103)
	ln := serve(t, server.Options{Service: f}, server.ListenConfig{})
	rpc := kprobev1connect.NewInvestigationServiceClient(&http.Client{Transport: h2c()}, "http://"+ln.Addr(), connect.WithGRPC())
	ctx := context.Background()

	read := func(req *kprobev1.QueryEventsRequest) (ids []uint64, sizes []int, tokens []string) {
		t.Helper()
		s, err := rpc.QueryEvents(ctx, connect.NewRequest(req))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		for s.Receive() {
			for _, e := range s.Msg().GetEvents() {
				ids = append(ids, e.GetId())
			}
			sizes = append(sizes, len(s.Msg().GetEvents()))
			tokens = append(tokens, s.Msg().GetNextPageToken())
		}
		if err := s.Err(); err != nil {
			t.Fatal(err)
		}
		return ids, sizes, tokens
	}
	var all []uint64
	for _, e := range f.events {
		all = append(all, e.ID)
	}
	// Pages of 7 cut inside the groups of 5 events sharing a timestamp.
	ids, sizes, tokens := read(&kprobev1.QueryEventsRequest{PageSize: 7})
	if d := cmp.Diff(all, ids); d != "" {
		t.Fatalf("paged events (-want +got):\n%s", d)
	}
	if len(sizes) != 15 || sizes[0] != 7 || sizes[14] != 103-14*7 {
		t.Errorf("page sizes %v: want 14 pages of 7 and one of 5", sizes)
	}
	if tokens[14] != "" || tokens[3] == "" {
		t.Errorf("tokens: the last page must have none, the others one: %q", tokens)
	}
	// Resume after page 4 (28 events, mid-timestamp) with its token.
	rest, _, _ := read(&kprobev1.QueryEventsRequest{PageSize: 7, PageToken: tokens[3]})
	if d := cmp.Diff(all[28:], rest); d != "" {
		t.Errorf("resumed events (-want +got):\n%s", d)
	}
	// A limit stops the stream and leaves a token to go on with.
	lim, _, ltok := read(&kprobev1.QueryEventsRequest{PageSize: 4, Limit: 10})
	if d := cmp.Diff(all[:10], lim); d != "" {
		t.Errorf("limited events (-want +got):\n%s", d)
	}
	next, _, _ := read(&kprobev1.QueryEventsRequest{PageSize: 50, PageToken: ltok[len(ltok)-1], Limit: 13})
	if d := cmp.Diff(all[10:13], next); d != "" {
		t.Errorf("events after the limit (-want +got):\n%s", d)
	}
}

func TestErrorCodes(t *testing.T) {
	f := newFake(10)
	ln := serve(t, server.Options{Service: f}, server.ListenConfig{})
	c := dial(t, client.Options{Addr: ln.Addr()})
	rpc := kprobev1connect.NewInvestigationServiceClient(&http.Client{Transport: h2c()}, "http://"+ln.Addr(), connect.WithGRPC())
	ctx := context.Background()
	stream := func(req *kprobev1.QueryEventsRequest) error {
		s, err := rpc.QueryEvents(ctx, connect.NewRequest(req))
		if err != nil {
			return err
		}
		defer s.Close()
		for s.Receive() {
		}
		return s.Err()
	}
	unary := func(err error) func() error { return func() error { return err } }
	_, chainErr := c.Chain(ctx, investigate.Ref{Kind: "settlement", ID: "9999"})
	_, noRef := rpc.GetChain(ctx, connect.NewRequest(&kprobev1.GetChainRequest{}))
	_, bigLimit := rpc.ListSettlements(ctx, connect.NewRequest(&kprobev1.ListSettlementsRequest{Limit: 5000}))
	_, badWindow := rpc.ListSettlements(ctx, connect.NewRequest(&kprobev1.ListSettlementsRequest{FromNs: 10, ToNs: 5}))
	_, noKind := rpc.GetReport(ctx, connect.NewRequest(&kprobev1.GetReportRequest{Ref: &kprobev1.GetReportRequest_Business{Business: &kprobev1.BusinessRef{Id: "x"}}}))
	for _, tc := range []struct {
		name string
		call func() error
		code connect.Code
	}{
		{"unknown settlement", unary(chainErr), connect.CodeNotFound},
		{"chain of nothing", unary(noRef), connect.CodeInvalidArgument},
		{"too many settlements", unary(bigLimit), connect.CodeInvalidArgument},
		{"window backwards", unary(badWindow), connect.CodeInvalidArgument},
		{"business ref without kind", unary(noKind), connect.CodeInvalidArgument},
		{"unknown event type", func() error { return stream(&kprobev1.QueryEventsRequest{Types: []string{"teleport"}}) }, connect.CodeInvalidArgument},
		{"forged page token", func() error { return stream(&kprobev1.QueryEventsRequest{PageToken: "bm90IGEgdG9rZW4"}) }, connect.CodeInvalidArgument},
		{"huge page", func() error { return stream(&kprobev1.QueryEventsRequest{PageSize: 1 << 20}) }, connect.CodeInvalidArgument},
		{"syscall log of no process", func() error {
			_, err := c.SyscallLog(ctx, investigate.SyscallLogQuery{})
			return err
		}, connect.CodeInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) { wantCode(t, tc.name, tc.call(), tc.code) })
	}
	if !errors.Is(chainErr, investigate.ErrNotFound) {
		t.Errorf("the client's NotFound %v does not match investigate.ErrNotFound", chainErr)
	}
	// The service's own sentinels keep their meaning through the API.
	f.err = fmt.Errorf("subjects: kind %q: %w", "nonsense", investigate.ErrInvalid)
	_, err := c.Subjects(ctx, investigate.SubjectQuery{Kind: "nonsense"})
	wantCode(t, "invalid kind", err, connect.CodeInvalidArgument)
	if !errors.Is(err, investigate.ErrInvalid) || !strings.Contains(err.Error(), `kind "nonsense"`) {
		t.Errorf("invalid kind: %v, want investigate.ErrInvalid with the service's message", err)
	}
	f.err = errors.New("disk on fire")
	_, err = c.Subjects(ctx, investigate.SubjectQuery{Kind: "settlement"})
	wantCode(t, "store failure", err, connect.CodeInternal)
}

// TestProtocols: one port serves gRPC (grpc-go itself as the client), gRPC-Web and
// Connect with JSON, whose field names are the proto's (explained_ns), as the CLI's JSON.
func TestProtocols(t *testing.T) {
	f := newFake(10)
	ln := serve(t, server.Options{Service: f}, server.ListenConfig{})
	ctx := context.Background()
	want := f.chains["settlement/4821"]

	// Connect + JSON, as curl would send it.
	res, err := http.Post("http://"+ln.Addr()+kprobev1connect.InvestigationServiceGetChainProcedure,
		"application/json", strings.NewReader(`{"settlement_id":"4821"}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("connect json: %s: %s", res.Status, body)
	}
	var j struct {
		Subject struct {
			ID         string `json:"id"`
			DurationNs string `json:"duration_ns"`
		} `json:"subject"`
		Causes []struct {
			Kind        string `json:"kind"`
			ExplainedNs string `json:"explained_ns"`
			Process     struct {
				Node string `json:"node"`
				Pid  int    `json:"pid"`
				Comm string `json:"comm"`
			} `json:"process"`
		} `json:"causes"`
	}
	if err := json.Unmarshal(body, &j); err != nil {
		t.Fatal(err)
	}
	if j.Subject.ID != "4821" || j.Subject.DurationNs != "900000000" || len(j.Causes) != 1 ||
		j.Causes[0].ExplainedNs != "600000000" || j.Causes[0].Process.Comm != "noisy" || j.Causes[0].Kind != "cpu_contention" {
		t.Errorf("connect json chain: %s", body)
	}
	// A bad JSON request is the caller's mistake.
	res, err = http.Post("http://"+ln.Addr()+kprobev1connect.InvestigationServiceGetChainProcedure,
		"application/json", strings.NewReader(`{"settlement_id":`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 400 || !bytes.Contains(body, []byte(`"invalid_argument"`)) {
		t.Errorf("malformed json: %s %s, want 400 invalid_argument", res.Status, body)
	}

	// gRPC-Web.
	web := kprobev1connect.NewInvestigationServiceClient(http.DefaultClient, "http://"+ln.Addr(), connect.WithGRPCWeb())
	wres, err := web.GetChain(ctx, connect.NewRequest(&kprobev1.GetChainRequest{Ref: &kprobev1.GetChainRequest_SettlementId{SettlementId: "4821"}}))
	if err != nil {
		t.Fatal(err)
	}
	if wres.Msg.GetCauses()[0].GetExplainedNs() != want.Causes[0].ExplainedNs {
		t.Errorf("grpc-web chain: %v", wres.Msg)
	}

	// gRPC from grpc-go: a unary call and server reflection.
	conn, err := grpc.NewClient(ln.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var gres kprobev1.GetChainResponse
	if err := conn.Invoke(ctx, kprobev1connect.InvestigationServiceGetChainProcedure,
		&kprobev1.GetChainRequest{Ref: &kprobev1.GetChainRequest_SettlementId{SettlementId: "4821"}}, &gres); err != nil {
		t.Fatal(err)
	}
	if gres.GetSubject().GetId() != "4821" {
		t.Errorf("grpc chain: %v", &gres)
	}
	err = conn.Invoke(ctx, kprobev1connect.InvestigationServiceGetChainProcedure,
		&kprobev1.GetChainRequest{Ref: &kprobev1.GetChainRequest_SettlementId{SettlementId: "1"}}, &gres)
	if st, _ := status.FromError(err); st.Code().String() != "NotFound" {
		t.Errorf("grpc unknown settlement: %v, want NotFound", err)
	}
	rs, err := reflectionv1.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := rs.Send(&reflectionv1.ServerReflectionRequest{MessageRequest: &reflectionv1.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	rr, err := rs.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range rr.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	if d := cmp.Diff([]string{kprobev1connect.InvestigationServiceName}, names); d != "" {
		t.Errorf("reflection services (-want +got):\n%s", d)
	}
}
