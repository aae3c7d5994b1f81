package causal

import (
	"bufio"
	"encoding/json"
	"net/netip"
	"os"
	"strconv"
	"testing"

	"github.com/kprobe/kprobe/pipeline/event"
	"github.com/kprobe/kprobe/pipeline/span"
)

func scratchLoad(t *testing.T, evPath, spPath string) (*Index, map[string]Subject) {
	f, err := os.Open(evPath)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var out []event.Event
	host, _ := os.Hostname()
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			continue
		}
		num := func(k string) uint64 { v, _ := m[k].(float64); return uint64(v) }
		str := func(k string) string { v, _ := m[k].(string); return v }
		var e event.Event
		e.TsNs = int64(m["ts_ns"].(float64))
		e.ID, _ = strconv.ParseUint(str("id"), 16, 64)
		e.Node, e.PID, e.TID, e.CPU, e.Comm = str("node"), uint32(num("pid")), uint32(num("tid")), uint32(num("cpu")), str("comm")
		if e.Node == "" {
			e.Node = host
		}
		e.Type, _ = event.ParseType(str("type"))
		e.DurNs = num("dur_ns")
		e.Syscall = str("syscall")
		e.FD = int32(num("fd"))
		if v, ok := m["bytes"].(float64); ok {
			e.Bytes = int64(v)
		}
		if v, ok := m["errno"].(float64); ok {
			e.Errno = int32(v)
		}
		e.Dev, e.Ino = num("dev"), num("ino")
		if a, err := netip.ParseAddr(str("saddr")); err == nil {
			e.SAddr = a
		}
		if a, err := netip.ParseAddr(str("daddr")); err == nil {
			e.DAddr = a
		}
		e.SPort, e.DPort = uint16(num("sport")), uint16(num("dport"))
		e.Preempted, _ = m["preempted"].(bool)
		e.RunqDelayNs = num("runq_delay_ns")
		e.NextPID, e.NextTID, e.NextComm = uint32(num("next_pid")), uint32(num("next_tid")), str("next_comm")
		e.WakerPID, e.WakerTID = uint32(num("waker_pid")), uint32(num("waker_tid"))
		e.Addr = num("addr")
		out = append(out, e)
	}
	idx := NewIndex()
	idx.Add(out)
	var spans []span.Span
	b, _ := os.ReadFile(spPath)
	json.Unmarshal(b, &spans)
	m := DefaultMapping()
	byTrace := map[string][]span.Span{}
	for _, s := range spans {
		byTrace[s.TraceID] = append(byTrace[s.TraceID], s)
	}
	subs := map[string]Subject{}
	for _, s := range spans {
		for _, o := range m.Objects(&s) {
			sub := subs[o.NodeID()]
			sub.Object = o
			set := map[string]bool{s.SpanID: true}
			sub.Spans = append(sub.Spans, s)
			for changed := true; changed; {
				changed = false
				for _, c := range byTrace[s.TraceID] {
					if !set[c.SpanID] && set[c.ParentID] {
						set[c.SpanID] = true
						sub.Spans = append(sub.Spans, c)
						changed = true
					}
				}
			}
			subs[o.NodeID()] = sub
		}
	}
	return idx, subs
}
