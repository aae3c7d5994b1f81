package server_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	gocmp "github.com/google/go-cmp/cmp"

	"github.com/kprobe/kprobe/api/client"
	"github.com/kprobe/kprobe/api/convert"
	kprobev1 "github.com/kprobe/kprobe/api/kprobe/v1"
	"github.com/kprobe/kprobe/api/kprobe/v1/kprobev1connect"
	"github.com/kprobe/kprobe/api/live"
	"github.com/kprobe/kprobe/api/server"
	"github.com/kprobe/kprobe/pipeline/causal"
	"github.com/kprobe/kprobe/pipeline/event"
	"github.com/kprobe/kprobe/pipeline/eventlog"
	"github.com/kprobe/kprobe/pipeline/investigate"
)

// The contract suite: every RPC, through the real client over a real listener, against
// the real stores filled with a recorded incident, answers exactly what the use case
// called directly answers. The API may not change an answer.

// TestContractEmbedded: the embedded default (chDB event log, embedded graph under --data).
func TestContractEmbedded(t *testing.T) {
	log, g := embeddedStores(t)
	contract(t, log, g, identity{})
}

// TestContractCluster: the event log through chDB (no ClickHouse server can be had here),
// the graph in the real Neo4j `make test` starts.
func TestContractCluster(t *testing.T) {
	run := newIdentity(t)
	log, g := clusterStores(t, run)
	contract(t, log, g, run)
}

// reportSource is how the report's commands say the data is reached.
const reportSource = "--api kprobe.internal:8443"

func contract(t *testing.T, log *eventlog.Log, g graphStore, run identity) {
	ctx := context.Background()
	local := openService(t, log, g)
	hub := live.NewHub()
	ln := serve(t, server.Options{Service: local, Live: hub, Source: reportSource}, server.ListenConfig{})
	c := dial(t, client.Options{Addr: ln.Addr()})
	rpc := kprobev1connect.NewInvestigationServiceClient(&http.Client{Transport: h2c()}, "http://"+ln.Addr(), connect.WithGRPC())

	// StreamLive: subscribed before the incident is written, so everything written must
	// arrive: the unfiltered stream every event and business object, the filtered one
	// payments alone.
	all := watch(t, c, client.LiveFilter{})
	payments := watch(t, c, client.LiveFilter{Kinds: []string{investigate.KindPayment}, SubjectsOnly: true})
	st := record(t, log, g, hub, readIncident(t, run))
	t.Run("StreamLive", func(t *testing.T) { checkLive(t, local, all, payments, int(st.Written)) })

	// What the rows below ask about, found through the use case itself.
	slowest, err := local.Subjects(ctx, investigate.SubjectQuery{Kind: investigate.KindSettlement, Limit: 1})
	if err != nil || len(slowest) != 1 || slowest[0].ID != run.id(incidentSettlement) {
		t.Fatalf("slowest settlement %v, %v: want %s", slowest, err, run.id(incidentSettlement))
	}
	incident := slowest[0]
	settlement := investigate.Ref{Kind: investigate.KindSettlement, ID: incident.ID}
	chain, err := local.Chain(ctx, settlement)
	if err != nil || len(chain.Causes) == 0 || chain.Causes[0].Kind != investigate.CauseStorage {
		t.Fatalf("chain of %s: %v, %v: want storage first", incident.ID, chain.Causes, err)
	}
	// The chain is the one the causal engine drew into this graph, not one computed later.
	drawn, err := causal.ReadResult(ctx, g, investigate.KindSettlement, incident.ID)
	if err != nil {
		t.Fatalf("the graph holds no chain of %s: %v", incident.ID, err)
	}
	if d := gocmp.Diff(investigate.ChainOf(drawn), chain); d != "" {
		t.Fatalf("the use case's chain is not the graph's (-graph +use case):\n%s", d)
	}
	payment := paymentOf(ctx, t, local, incident)
	evidence := evidenceIDs(t, chain.Causes[0])
	window := [2]int64{incident.StartNs, incident.StartNs + incident.DurationNs}
	spanOf, err := local.Events(ctx, investigate.EventQuery{Ref: settlement, Types: []event.Type{event.TypeWrite}, Limit: 1})
	if err != nil || len(spanOf) == 0 || spanOf[0].SpanID == "" {
		t.Fatalf("a write of %s joined to a span: %v, %v", incident.ID, spanOf, err)
	}

	type answer = func(ctx context.Context) (any, error)
	subjects := func(svc investigate.Service, q investigate.SubjectQuery) answer {
		return func(ctx context.Context) (any, error) { return svc.Subjects(ctx, q) }
	}
	chainOf := func(svc investigate.Service, ref investigate.Ref) answer {
		return func(ctx context.Context) (any, error) { return svc.Chain(ctx, ref) }
	}
	events := func(q investigate.EventQuery) answer {
		return func(ctx context.Context) (any, error) { return local.Events(ctx, q) }
	}
	syscalls := func(svc investigate.Service, q investigate.SyscallLogQuery) answer {
		return func(ctx context.Context) (any, error) { return svc.SyscallLog(ctx, q) }
	}
	report := func(ref investigate.Ref) (api, direct answer) {
		return func(ctx context.Context) (any, error) {
				md, err := c.Report(ctx, ref, 5)
				return string(md), err
			}, func(ctx context.Context) (any, error) {
				rep, err := investigate.BuildReport(ctx, local, ref, investigate.ReportOptions{EvidenceRows: 5, Source: reportSource})
				return string(rep.Markdown()), err
			}
	}
	pages := func(req *kprobev1.QueryEventsRequest) answer {
		return func(ctx context.Context) (any, error) { return readPages(ctx, rpc, req) }
	}
	// Pages of 1000 cut the node's 5,787 events into six; the settlement's, pages of 7.
	page := int32(1000)
	subjectRef := &kprobev1.SubjectRef{Ref: &kprobev1.SubjectRef_SettlementId{SettlementId: incident.ID}}
	token := firstToken(ctx, t, rpc, &kprobev1.QueryEventsRequest{Node: incident.Node, PageSize: page})
	reportAPI, reportLocal := report(settlement)
	unknownReportAPI, unknownReportLocal := report(investigate.Ref{Kind: investigate.KindSettlement, ID: run.id("no-such")})

	for _, tc := range []struct {
		name   string
		api    answer // through the client, over the listener
		direct answer // the same question to investigate.Local; nil for the API's own checks
		code   connect.Code
		check  func(t *testing.T, got any) // what the answer must show of the incident
	}{
		{name: "ListSettlements slowest settlements",
			api: subjects(c, investigate.SubjectQuery{Kind: investigate.KindSettlement, Limit: 20}), direct: subjects(local, investigate.SubjectQuery{Kind: investigate.KindSettlement, Limit: 20}),
			check: func(t *testing.T, got any) {
				s := got.([]investigate.Subject)
				if len(s) != 12 || s[0].ID != incident.ID || s[0].Events == 0 {
					t.Errorf("%d settlements, the slowest %+v: want the recording's 12, %s first with its events", len(s), s[0], incident.ID)
				}
			}},
		{name: "ListSettlements failed settlements",
			api: subjects(c, investigate.SubjectQuery{Kind: investigate.KindSettlement, FailedOnly: true}), direct: subjects(local, investigate.SubjectQuery{Kind: investigate.KindSettlement, FailedOnly: true}),
			check: func(t *testing.T, got any) {
				if s := got.([]investigate.Subject); len(s) != 1 || s[0].ID != run.id(failedSettlement) || s[0].Status != "error" {
					t.Errorf("failed settlements %+v: want %s alone", s, run.id(failedSettlement))
				}
			}},
		{name: "ListSettlements slowest payments in the incident's window",
			api:    subjects(c, investigate.SubjectQuery{Kind: investigate.KindPayment, From: window[0], To: window[1], Limit: 50}),
			direct: subjects(local, investigate.SubjectQuery{Kind: investigate.KindPayment, From: window[0], To: window[1], Limit: 50}),
			check: func(t *testing.T, got any) {
				if s := got.([]investigate.Subject); len(s) == 0 || len(s) >= 48 {
					t.Errorf("%d payments in %s's window: want some of the 48", len(s), incident.ID)
				}
			}},
		{name: "ListSettlements clearing windows",
			api: subjects(c, investigate.SubjectQuery{Kind: investigate.KindClearingWindow}), direct: subjects(local, investigate.SubjectQuery{Kind: investigate.KindClearingWindow}),
			check: nonEmpty},
		{name: "ListSettlements order book ops",
			api: subjects(c, investigate.SubjectQuery{Kind: investigate.KindOrderBookOp, Limit: 100}), direct: subjects(local, investigate.SubjectQuery{Kind: investigate.KindOrderBookOp, Limit: 100}),
			check: nonEmpty},
		{name: "ListSettlements unknown kind",
			api: subjects(c, investigate.SubjectQuery{Kind: "netting_run"}), direct: subjects(local, investigate.SubjectQuery{Kind: "netting_run"}),
			code: connect.CodeInvalidArgument},

		{name: "GetChain by settlement_id", api: chainOf(c, settlement), direct: chainOf(local, settlement),
			check: func(t *testing.T, got any) {
				if ch := got.(investigate.Chain); ch.Subject.ID != incident.ID || ch.Causes[0].Kind != investigate.CauseStorage {
					t.Errorf("chain of %s: subject %s, causes %+v: want storage first", incident.ID, ch.Subject.ID, ch.Causes)
				}
			}},
		{name: "GetChain by payment_id", api: chainOf(c, payment), direct: chainOf(local, payment), check: hasCauses},
		{name: "GetChain by trace_id", api: chainOf(c, investigate.Ref{TraceID: incident.TraceID}), direct: chainOf(local, investigate.Ref{TraceID: incident.TraceID}), check: hasCauses},
		{name: "GetChain unknown settlement_id", api: chainOf(c, investigate.Ref{Kind: investigate.KindSettlement, ID: run.id("999999")}),
			direct: chainOf(local, investigate.Ref{Kind: investigate.KindSettlement, ID: run.id("999999")}), code: connect.CodeNotFound},
		{name: "GetChain unknown payment_id", api: chainOf(c, investigate.Ref{Kind: investigate.KindPayment, ID: run.id("PAY-0")}),
			direct: chainOf(local, investigate.Ref{Kind: investigate.KindPayment, ID: run.id("PAY-0")}), code: connect.CodeNotFound},
		{name: "GetChain unknown trace_id", api: chainOf(c, investigate.Ref{TraceID: strings.Repeat("ab", 16)}),
			direct: chainOf(local, investigate.Ref{TraceID: strings.Repeat("ab", 16)}), code: connect.CodeNotFound},

		{name: "QueryEvents every event of the node, paged",
			api: pages(&kprobev1.QueryEventsRequest{Node: incident.Node, PageSize: page}), direct: events(investigate.EventQuery{Node: incident.Node}),
			check: func(t *testing.T, got any) {
				if n := len(got.([]event.Event)); n != int(st.Written) {
					t.Errorf("%d events of the node, want the %d written", n, st.Written)
				}
			}},
		{name: "QueryEvents resumed from a page token",
			api: pages(&kprobev1.QueryEventsRequest{Node: incident.Node, PageSize: page, PageToken: token}),
			direct: func(ctx context.Context) (any, error) {
				evs, err := local.Events(ctx, investigate.EventQuery{Node: incident.Node})
				return evs[min(len(evs), int(page)):], err
			}, check: nonEmpty},
		{name: "QueryEvents of the settlement, limited",
			api: pages(&kprobev1.QueryEventsRequest{Subject: subjectRef, PageSize: 7, Limit: 50}), direct: events(investigate.EventQuery{Ref: settlement, Limit: 50}),
			check: func(t *testing.T, got any) {
				if n := len(got.([]event.Event)); n != 50 {
					t.Errorf("%d events of %s under a limit of 50", n, incident.ID)
				}
			}},
		{name: "QueryEvents reads and writes of the process",
			api:    pages(&kprobev1.QueryEventsRequest{Node: incident.Node, Pid: incident.PID, Types: []string{"read", "write"}, PageSize: page}),
			direct: events(investigate.EventQuery{Node: incident.Node, PID: incident.PID, Types: []event.Type{event.TypeRead, event.TypeWrite}}),
			check:  nonEmpty},
		{name: "QueryEvents of one span",
			api: pages(&kprobev1.QueryEventsRequest{SpanId: spanOf[0].SpanID, PageSize: page}), direct: events(investigate.EventQuery{SpanID: spanOf[0].SpanID}), check: nonEmpty},
		{name: "QueryEvents the first cause's evidence",
			api: pages(&kprobev1.QueryEventsRequest{Ids: evidence, PageSize: page}), direct: events(investigate.EventQuery{IDs: evidence}),
			check: func(t *testing.T, got any) {
				if n := len(got.([]event.Event)); n != len(evidence) {
					t.Errorf("%d events of %d evidence IDs", n, len(evidence))
				}
			}},
		{name: "QueryEvents in the incident's window",
			api:    pages(&kprobev1.QueryEventsRequest{FromNs: window[0], ToNs: window[1], PageSize: page}),
			direct: events(investigate.EventQuery{From: window[0], To: window[1]}), check: nonEmpty},
		{name: "QueryEvents forged page token",
			api: pages(&kprobev1.QueryEventsRequest{PageToken: token[:len(token)/2] + "x"}), code: connect.CodeInvalidArgument},
		{name: "QueryEvents unknown event type",
			api: pages(&kprobev1.QueryEventsRequest{Types: []string{"teleport"}}), code: connect.CodeInvalidArgument},

		{name: "GetSyscallLog of the incident's process",
			api:    syscalls(c, investigate.SyscallLogQuery{Node: incident.Node, PID: incident.PID}),
			direct: syscalls(local, investigate.SyscallLogQuery{Node: incident.Node, PID: incident.PID}),
			check: func(t *testing.T, got any) {
				evs := got.([]event.Event)
				if len(evs) == 0 || !slices.ContainsFunc(evs, func(e event.Event) bool { return e.Type == event.TypeSyscall }) {
					t.Errorf("%d events in the syscall log of pid %d: want its flight-recorder syscalls", len(evs), incident.PID)
				}
			}},
		{name: "GetSyscallLog of no process", api: syscalls(c, investigate.SyscallLogQuery{Node: incident.Node}), code: connect.CodeInvalidArgument},

		{name: "GetReport of the settlement", api: reportAPI, direct: reportLocal,
			check: func(t *testing.T, got any) {
				if md := got.(string); !strings.Contains(md, incident.ID) || !strings.Contains(md, reportSource) {
					t.Errorf("the report names neither %s nor how to reach the data:\n%s", incident.ID, md)
				}
			}},
		{name: "GetReport of an unknown settlement", api: unknownReportAPI, direct: unknownReportLocal, code: connect.CodeNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
			defer cancel()
			got, err := tc.api(ctx)
			var want any
			var directErr error
			if tc.direct != nil {
				want, directErr = tc.direct(ctx)
			}
			if tc.code != 0 {
				wantCode(t, "the API", err, tc.code)
				if tc.direct != nil && !errors.Is(directErr, codeSentinel[tc.code]) {
					t.Errorf("the use case said %v, want %v", directErr, codeSentinel[tc.code])
				}
				return
			}
			if err != nil || directErr != nil {
				t.Fatalf("api: %v; direct: %v", err, directErr)
			}
			if d := diff(want, got); d != "" {
				t.Errorf("the API changed the answer (-direct +api):\n%s", d)
			}
			if tc.check != nil {
				tc.check(t, got)
			}
		})
	}
}

// diff is cmp.Diff(want, got), "" at once when they are deeply equal: cmp takes minutes
// over thousands of events with their payloads on a loaded machine.
func diff(want, got any) string {
	if reflect.DeepEqual(want, got) {
		return ""
	}
	return gocmp.Diff(want, got, eventOpts)
}

// codeSentinel is the use case's error each API code stands for.
var codeSentinel = map[connect.Code]error{
	connect.CodeNotFound:        investigate.ErrNotFound,
	connect.CodeInvalidArgument: investigate.ErrInvalid,
}

func nonEmpty(t *testing.T, got any) {
	t.Helper()
	var n int
	switch v := got.(type) {
	case []investigate.Subject:
		n = len(v)
	case []event.Event:
		n = len(v)
	}
	if n == 0 {
		t.Error("empty answer: the incident must show some")
	}
}

func hasCauses(t *testing.T, got any) {
	t.Helper()
	if ch := got.(investigate.Chain); len(ch.Causes) == 0 {
		t.Errorf("chain of %+v has no causes", ch.Subject)
	}
}

// readPages reads a QueryEvents stream to its end, each page checked to hold at most
// page_size events and to carry the token of the page after it (none on the last).
func readPages(ctx context.Context, rpc kprobev1connect.InvestigationServiceClient, req *kprobev1.QueryEventsRequest) ([]event.Event, error) {
	s, err := rpc.QueryEvents(ctx, connect.NewRequest(req))
	if err != nil {
		return nil, err
	}
	defer s.Close()
	var out []event.Event
	last := "start"
	for s.Receive() {
		if last == "" {
			return nil, errors.New("a page came after the page without a next_page_token")
		}
		if n := len(s.Msg().GetEvents()); req.GetPageSize() > 0 && n > int(req.GetPageSize()) {
			return nil, fmt.Errorf("a page of %d events, asked for pages of %d", n, req.GetPageSize())
		}
		if out, err = convert.EventsFromPB(out, s.Msg().GetEvents()); err != nil {
			return nil, err
		}
		last = s.Msg().GetNextPageToken()
	}
	return out, s.Err()
}

// firstToken is the token after the first page of req.
func firstToken(ctx context.Context, t *testing.T, rpc kprobev1connect.InvestigationServiceClient, req *kprobev1.QueryEventsRequest) string {
	t.Helper()
	s, err := rpc.QueryEvents(ctx, connect.NewRequest(req))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !s.Receive() || s.Msg().GetNextPageToken() == "" {
		t.Fatalf("first page: %v, token %q: want one page of %d and a token", s.Err(), s.Msg().GetNextPageToken(), req.GetPageSize())
	}
	return s.Msg().GetNextPageToken()
}

// paymentOf is one payment of subject's settlement, as its events name it.
func paymentOf(ctx context.Context, t *testing.T, local *investigate.Local, s investigate.Subject) investigate.Ref {
	t.Helper()
	pays, err := local.Subjects(ctx, investigate.SubjectQuery{Kind: investigate.KindPayment, From: s.StartNs, To: s.StartNs + s.DurationNs, Limit: 1})
	if err != nil || len(pays) == 0 {
		t.Fatalf("payments in settlement %s's window: %v, %v", s.ID, pays, err)
	}
	return investigate.Ref{Kind: investigate.KindPayment, ID: pays[0].ID}
}

func evidenceIDs(t *testing.T, c investigate.Cause) []uint64 {
	t.Helper()
	var ids []uint64
	for _, e := range c.Evidence {
		id, err := strconv.ParseUint(e, 10, 64)
		if err != nil {
			t.Fatalf("evidence of the first cause: %v", err)
		}
		ids = append(ids, id)
	}
	if len(ids) == 0 {
		t.Fatal("the first cause has no evidence")
	}
	return ids
}

// liveLog is what one live stream delivered.
type liveLog struct {
	mu       sync.Mutex
	events   []event.Event
	subjects []investigate.Subject
	missed   uint64
	err      error
	changed  chan struct{} // a token after each update
}

// watch subscribes to the live stream and reads it in the background until the test ends.
func watch(t *testing.T, c *client.Client, f client.LiveFilter) *liveLog {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s, err := c.Live(ctx, f)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	l := &liveLog{changed: make(chan struct{}, 1)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			u, err := s.Next()
			l.mu.Lock()
			l.events = append(l.events, u.Events...)
			l.subjects = append(l.subjects, u.Subjects...)
			l.missed, l.err = max(l.missed, u.Missed), err
			l.mu.Unlock()
			select {
			case l.changed <- struct{}{}:
			default:
			}
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { cancel(); s.Close(); <-done })
	return l
}

// waitFor waits until done holds of what the stream delivered, or the stream fails.
func (l *liveLog) waitFor(t *testing.T, what string, done func(l *liveLog) bool) {
	t.Helper()
	timeout := time.After(2 * time.Minute)
	for {
		l.mu.Lock()
		ok, err := done(l), l.err
		l.mu.Unlock()
		switch {
		case ok:
			return
		case err != nil:
			t.Fatalf("live stream ended before %s: %v", what, err)
		}
		select {
		case <-l.changed:
		case <-timeout:
			t.Fatalf("live stream: no %s in 2 minutes", what)
		}
	}
}

// checkLive: the live streams carried what was written, exactly as the stores now hold it.
func checkLive(t *testing.T, local *investigate.Local, all, payments *liveLog, written int) {
	ctx := context.Background()
	all.waitFor(t, "every event written", func(l *liveLog) bool { return len(l.events)+int(l.missed) >= written })
	stored, err := local.Events(ctx, investigate.EventQuery{})
	if err != nil {
		t.Fatal(err)
	}
	all.mu.Lock()
	got := slices.Clone(all.events)
	missed := all.missed
	all.mu.Unlock()
	slices.SortStableFunc(got, func(a, b event.Event) int { return cmp.Or(cmp.Compare(a.TsNs, b.TsNs), cmp.Compare(a.ID, b.ID)) })
	// The stream carries the events as the engine wrote them; the event log keeps a
	// syscall's Args only up to its last non-zero one.
	for i := range got {
		got[i].Args = storedArgs(got[i].Args)
	}
	if d := diff(stored, got); d != "" || missed != 0 {
		t.Errorf("live events (-stored +streamed), %d missed:\n%s", missed, d)
	}
	for _, tc := range []struct {
		kind string
		l    *liveLog
	}{{investigate.KindSettlement, all}, {investigate.KindPayment, all}, {investigate.KindPayment, payments}} {
		subs, err := local.Subjects(ctx, investigate.SubjectQuery{Kind: tc.kind, Limit: 1000})
		if err != nil || len(subs) == 0 {
			t.Fatalf("%s: %v, %v", tc.kind, subs, err)
		}
		want := idsOf(subs, tc.kind)
		tc.l.waitFor(t, "every "+tc.kind, func(l *liveLog) bool { return len(idsOf(l.subjects, tc.kind)) >= len(want) })
		tc.l.mu.Lock()
		got := idsOf(tc.l.subjects, tc.kind)
		tc.l.mu.Unlock()
		if d := gocmp.Diff(want, got); d != "" {
			t.Errorf("live %s IDs (-stored +streamed):\n%s", tc.kind, d)
		}
	}
	// The payments stream carried payments alone, and no events, while the other carried both.
	payments.mu.Lock()
	defer payments.mu.Unlock()
	if len(payments.events) != 0 || len(idsOf(payments.subjects, "")) != len(idsOf(payments.subjects, investigate.KindPayment)) {
		t.Errorf("payments stream carried %d events and subjects %v: want payments alone", len(payments.events), idsOf(payments.subjects, ""))
	}
}

// storedArgs is args as the event log gives them back: up to the last non-zero one.
func storedArgs(args []int64) []int64 {
	for len(args) > 0 && args[len(args)-1] == 0 {
		args = args[:len(args)-1]
	}
	if len(args) == 0 {
		return nil
	}
	return args
}

// idsOf is the sorted, distinct kind/ID of the subjects of kind ("" any).
func idsOf(subs []investigate.Subject, kind string) []string {
	var out []string
	for _, s := range subs {
		if kind == "" || s.Kind == kind {
			out = append(out, s.Kind+"/"+s.ID)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
