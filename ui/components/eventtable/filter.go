package eventtable

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/kprobe/kprobe/pipeline/event"
)

// A filter is a list of terms that must all hold: "type=write,read pid=4242 dur>1ms
// fd!=3 cpu=1 tid=4243 comm=settlement". A bare word matches the type name or comm.
type filter []func(*event.Event) bool

func (f filter) match(e *event.Event) bool {
	for _, t := range f {
		if !t(e) {
			return false
		}
	}
	return true
}

const filterHelp = "want terms like type=write pid=4242 tid=4243 fd=7 cpu=1 dur>1ms comm=svc"

func parseFilter(s string) (filter, error) {
	var f filter
	for _, term := range strings.Fields(s) {
		t, err := parseTerm(term)
		if err != nil {
			return nil, fmt.Errorf("filter %q: %w", term, err)
		}
		f = append(f, t)
	}
	return f, nil
}

func parseTerm(term string) (func(*event.Event) bool, error) {
	op := ""
	i := strings.IndexAny(term, "=<>!")
	if i < 0 {
		word := term
		return func(e *event.Event) bool {
			return e.Type.String() == word || strings.Contains(e.Comm, word)
		}, nil
	}
	field := term[:i]
	for _, o := range []string{"!=", ">=", "<=", "=", ">", "<"} {
		if strings.HasPrefix(term[i:], o) {
			op = o
			break
		}
	}
	if op == "" {
		return nil, fmt.Errorf("no operator (%s)", filterHelp)
	}
	val := term[i+len(op):]
	if val == "" {
		return nil, fmt.Errorf("no value (%s)", filterHelp)
	}
	switch field {
	case "type":
		if op != "=" && op != "!=" {
			return nil, fmt.Errorf("type takes = or !=")
		}
		var want [16]bool
		for _, name := range strings.Split(val, ",") {
			t, err := event.ParseType(name)
			if err != nil {
				return nil, err
			}
			want[t] = true
		}
		neg := op == "!="
		return func(e *event.Event) bool { return want[e.Type&15] != neg }, nil
	case "comm":
		if op != "=" && op != "!=" {
			return nil, fmt.Errorf("comm takes = or !=")
		}
		neg := op == "!="
		return func(e *event.Event) bool { return strings.Contains(e.Comm, val) != neg }, nil
	case "dur":
		d, err := time.ParseDuration(val)
		if err != nil {
			return nil, fmt.Errorf("dur wants a duration like 1ms or 250us")
		}
		return compare(op, int64(d), func(e *event.Event) int64 { return int64(e.DurNs) })
	case "pid", "tid", "fd", "cpu":
		n, err := strconv.ParseInt(val, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s wants a number", field)
		}
		get := map[string]func(*event.Event) int64{
			"pid": func(e *event.Event) int64 { return int64(e.PID) },
			"tid": func(e *event.Event) int64 { return int64(e.TID) },
			"fd":  func(e *event.Event) int64 { return fdOf(e) },
			"cpu": func(e *event.Event) int64 { return int64(e.CPU) },
		}[field]
		return compare(op, n, get)
	}
	return nil, fmt.Errorf("unknown field %q (%s)", field, filterHelp)
}

// fdOf is an event's file descriptor, -1 for events that have none.
func fdOf(e *event.Event) int64 {
	if e.Type == event.TypeRead || e.Type == event.TypeWrite {
		return int64(e.FD)
	}
	return -1
}

func compare(op string, want int64, get func(*event.Event) int64) (func(*event.Event) bool, error) {
	switch op {
	case "=":
		return func(e *event.Event) bool { return get(e) == want }, nil
	case "!=":
		return func(e *event.Event) bool { return get(e) != want }, nil
	case ">":
		return func(e *event.Event) bool { return get(e) > want }, nil
	case ">=":
		return func(e *event.Event) bool { return get(e) >= want }, nil
	case "<":
		return func(e *event.Event) bool { return get(e) < want }, nil
	}
	return func(e *event.Event) bool { return get(e) <= want }, nil
}
