package dataset

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"strconv"

	"github.com/kprobe/kprobe/pipeline/event"
)

// jsonEvent is one line of `kprobe-agent record --output FILE` (see event.AppendJSON).
type jsonEvent struct {
	TsNs        int64   `json:"ts_ns"`
	ID          string  `json:"id"`
	Node        string  `json:"node"`
	PID         uint32  `json:"pid"`
	TID         uint32  `json:"tid"`
	CPU         uint32  `json:"cpu"`
	Comm        string  `json:"comm"`
	CgroupID    uint64  `json:"cgroup_id"`
	Type        string  `json:"type"`
	DurNs       uint64  `json:"dur_ns"`
	Syscall     string  `json:"syscall"`
	FD          int32   `json:"fd"`
	Bytes       int64   `json:"bytes"`
	Errno       int32   `json:"errno"`
	Dev         uint64  `json:"dev"`
	Ino         uint64  `json:"ino"`
	SAddr       string  `json:"saddr"`
	SPort       uint16  `json:"sport"`
	DAddr       string  `json:"daddr"`
	DPort       uint16  `json:"dport"`
	Preempted   bool    `json:"preempted"`
	RunqDelayNs uint64  `json:"runq_delay_ns"`
	NextPID     uint32  `json:"next_pid"`
	NextTID     uint32  `json:"next_tid"`
	NextComm    string  `json:"next_comm"`
	WakerPID    uint32  `json:"waker_pid"`
	WakerTID    uint32  `json:"waker_tid"`
	Addr        uint64  `json:"addr"`
	IP          uint64  `json:"ip"`
	ErrorCode   uint64  `json:"error_code"`
	Kernel      bool    `json:"kernel"`
	Payload     []byte  `json:"payload"`
	Args        []int64 `json:"args"`
	Path        string  `json:"path"`
	Truncated   uint64  `json:"truncated"`
}

// ReadJSONL decodes the recorder's jsonl output into raw events (enrichment fields, if
// any, are not read: an import joins spans itself). A bad line is an error naming it.
// The jsonl has no kernel clock, so KtimeNs is set to the wall-clock time, which differs
// from it by the one boot offset and so keeps the order replay sorts flight-recorder
// calls by.
func ReadJSONL(r io.Reader) ([]event.Event, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	var out []event.Event
	for line := 1; sc.Scan(); line++ {
		if len(sc.Bytes()) == 0 {
			continue
		}
		var j jsonEvent
		if err := json.Unmarshal(sc.Bytes(), &j); err != nil {
			return nil, fmt.Errorf("events line %d: %w", line, err)
		}
		e, err := j.event()
		if err != nil {
			return nil, fmt.Errorf("events line %d: %w", line, err)
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading events: %w", err)
	}
	return out, nil
}

func (j *jsonEvent) event() (event.Event, error) {
	t, err := event.ParseType(j.Type)
	if err != nil {
		return event.Event{}, err
	}
	id, err := strconv.ParseUint(j.ID, 16, 64)
	if err != nil {
		return event.Event{}, fmt.Errorf("id %q: want hex", j.ID)
	}
	e := event.Event{ID: id, TsNs: j.TsNs, Node: j.Node, PID: j.PID, TID: j.TID, CPU: j.CPU, Comm: j.Comm,
		CgroupID: j.CgroupID, Type: t, DurNs: j.DurNs, Syscall: j.Syscall, FD: j.FD, Bytes: j.Bytes,
		Errno: j.Errno, Dev: j.Dev, Ino: j.Ino, SPort: j.SPort, DPort: j.DPort, Preempted: j.Preempted,
		RunqDelayNs: j.RunqDelayNs, NextPID: j.NextPID, NextTID: j.NextTID, NextComm: j.NextComm,
		WakerPID: j.WakerPID, WakerTID: j.WakerTID, Addr: j.Addr, IP: j.IP, ErrorCode: j.ErrorCode,
		KernelFault: j.Kernel, Payload: j.Payload, Args: j.Args, Path: j.Path, Truncated: j.Truncated,
		KtimeNs: uint64(max(j.TsNs, 0))}
	for _, a := range []struct {
		s   string
		dst *netip.Addr
	}{{j.SAddr, &e.SAddr}, {j.DAddr, &e.DAddr}} {
		if a.s == "" {
			continue
		}
		if *a.dst, err = netip.ParseAddr(a.s); err != nil {
			return event.Event{}, fmt.Errorf("address %q: %w", a.s, err)
		}
	}
	return e, nil
}
