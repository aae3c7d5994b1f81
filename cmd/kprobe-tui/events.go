package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"

	"github.com/kprobe/kprobe/cmd/internal/cli"
	"github.com/kprobe/kprobe/cmd/internal/wire"
	"github.com/kprobe/kprobe/pipeline/event"
	"github.com/kprobe/kprobe/pipeline/investigate"
)

func runEvents(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("kprobe-tui events", flag.ContinueOnError)
	var src wire.Source
	src.Register(fs)
	var (
		pid, tid                uint
		node, from, to, format  string
		trace, span, settlement string
		payment, typ            string
		limit                   int
	)
	fs.UintVar(&pid, "pid", 0, "process id")
	fs.UintVar(&tid, "tid", 0, "thread id")
	fs.StringVar(&node, "node", "", "node name")
	fs.StringVar(&from, "from", "", "start time, inclusive (RFC 3339 or ns since epoch)")
	fs.StringVar(&to, "to", "", "end time, exclusive (RFC 3339 or ns since epoch)")
	fs.StringVar(&trace, "trace", "", "trace id (hex)")
	fs.StringVar(&span, "span", "", "span id (hex)")
	fs.StringVar(&settlement, "settlement", "", "settlement id (span attribute settlement.id)")
	fs.StringVar(&payment, "payment", "", "payment id (span attribute payment.id)")
	fs.StringVar(&typ, "type", "", "event type: read, write, tcp_send, tcp_recv, sched_switch, page_fault")
	fs.IntVar(&limit, "limit", 0, "at most this many events (0: all)")
	fs.StringVar(&format, "format", "jsonl", "output format: jsonl")
	if err := cli.Parse(fs, args, stdout); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if format != "jsonl" {
		return fmt.Errorf("--format %q: only jsonl is supported", format)
	}
	if pid > 1<<32-1 || tid > 1<<32-1 {
		return fmt.Errorf("--pid/--tid out of range")
	}
	if limit < 0 {
		return fmt.Errorf("--limit %d: want 0 (all) or more", limit)
	}
	win, err := parseWindow(from, to)
	if err != nil {
		return err
	}
	q := investigate.EventQuery{Node: node, PID: uint32(pid), TID: uint32(tid), Ref: investigate.Ref{TraceID: trace}, SpanID: span, Limit: limit}
	q.From, q.To = win.from, win.to
	switch {
	case settlement != "" && payment != "":
		return fmt.Errorf("give --settlement or --payment, not both")
	case settlement != "":
		q.Ref.Kind, q.Ref.ID = investigate.KindSettlement, settlement
	case payment != "":
		q.Ref.Kind, q.Ref.ID = investigate.KindPayment, payment
	}
	if typ != "" {
		t, err := event.ParseType(typ)
		if err != nil {
			return fmt.Errorf("--type: %w", err)
		}
		q.Types = []event.Type{t}
	}
	if q.PID == 0 && q.TID == 0 && q.Ref == (investigate.Ref{}) && q.SpanID == "" && !win.given {
		return fmt.Errorf("no selection: give at least one of --pid, --trace, --settlement, --payment, --from/--to")
	}
	svc, err := src.Open(ctx)
	if err != nil {
		return err
	}
	defer svc.Close()
	evs, err := svc.Events(ctx, q)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(stdout)
	var buf []byte
	for i := range evs {
		buf = event.AppendJSON(buf[:0], &evs[i])
		buf = append(buf, '\n')
		w.Write(buf)
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("writing events: %w", err)
	}
	fmt.Fprintln(stderr, strconv.Itoa(len(evs))+" events")
	return nil
}
