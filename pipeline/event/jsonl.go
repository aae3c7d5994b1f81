package event

import (
	"encoding/base64"
	"sort"
	"strconv"
	"unicode/utf8"
)

// AppendJSON appends e as one JSON object (no newline) in the jsonl form that scripts and
// checks rely on: ts_ns, pid, tid, cpu, comm, type, dur_ns always; fd, bytes, errno,
// saddr, sport, daddr, dport and the other per-type fields where they apply; trace_id,
// span_id and business keys once the correlator has joined a span.
func AppendJSON(b []byte, e *Event) []byte {
	b = append(b, `{"ts_ns":`...)
	b = strconv.AppendInt(b, e.TsNs, 10)
	b = append(b, `,"id":"`...)
	b = strconv.AppendUint(b, e.ID, 16)
	b = append(b, '"')
	b = appendStr(b, "node", e.Node)
	b = appendUint(b, "pid", uint64(e.PID))
	b = appendUint(b, "tid", uint64(e.TID))
	b = appendUint(b, "cpu", uint64(e.CPU))
	b = appendStr(b, "comm", e.Comm)
	b = appendUint(b, "cgroup_id", e.CgroupID)
	b = appendStr(b, "type", e.Type.String())
	b = appendUint(b, "dur_ns", e.DurNs)
	switch e.Type {
	case TypeRead, TypeWrite:
		b = appendStr(b, "syscall", e.Syscall)
		b = appendInt(b, "fd", int64(e.FD))
		b = appendInt(b, "bytes", e.Bytes)
		b = appendInt(b, "errno", int64(e.Errno))
		b = appendUint(b, "dev", e.Dev)
		b = appendUint(b, "ino", e.Ino)
	case TypeTCPSend, TypeTCPRecv:
		b = appendInt(b, "bytes", e.Bytes)
		b = appendInt(b, "errno", int64(e.Errno))
		b = appendAddr(b, "saddr", e)
		b = appendUint(b, "sport", uint64(e.SPort))
		b = appendAddr(b, "daddr", e)
		b = appendUint(b, "dport", uint64(e.DPort))
	case TypeSchedSwitch:
		b = appendBool(b, "preempted", e.Preempted)
		b = appendUint(b, "off_cpu_ns", e.DurNs)
		b = appendUint(b, "runq_delay_ns", e.RunqDelayNs)
		b = appendUint(b, "next_pid", uint64(e.NextPID))
		b = appendUint(b, "next_tid", uint64(e.NextTID))
		b = appendStr(b, "next_comm", e.NextComm)
		b = appendUint(b, "waker_pid", uint64(e.WakerPID))
		b = appendUint(b, "waker_tid", uint64(e.WakerTID))
	case TypeSyscall:
		b = appendStr(b, "syscall", e.Syscall)
		b = appendInt(b, "fd", int64(e.FD))
		b = appendInt(b, "bytes", e.Bytes)
		b = appendInt(b, "errno", int64(e.Errno))
		b = append(b, `,"args":[`...)
		for i, a := range e.Args {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, a, 10)
		}
		b = append(b, ']')
		if e.Path != "" {
			b = appendStr(b, "path", e.Path)
		}
		if e.DAddr.IsValid() {
			b = appendAddr(b, "daddr", e)
			b = appendUint(b, "dport", uint64(e.DPort))
		}
		if e.Truncated > 0 {
			b = appendUint(b, "truncated", e.Truncated)
		}
	case TypePageFault:
		b = appendUint(b, "addr", e.Addr)
		b = appendUint(b, "ip", e.IP)
		b = appendUint(b, "error_code", e.ErrorCode)
		b = appendBool(b, "kernel", e.KernelFault)
	}
	if len(e.Payload) > 0 {
		b = append(b, `,"payload":"`...)
		b = base64.StdEncoding.AppendEncode(b, e.Payload)
		b = append(b, '"')
	}
	if e.TraceID != "" {
		b = appendStr(b, "trace_id", e.TraceID)
		b = appendStr(b, "span_id", e.SpanID)
		b = appendStr(b, "service", e.Service)
		b = appendStr(b, "span_name", e.SpanName)
		b = appendStr(b, "join", e.Join)
		keys := make([]string, 0, len(e.Attrs))
		for k := range e.Attrs {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			b = appendStr(b, k, e.Attrs[k])
		}
	}
	return append(b, '}')
}

func appendAddr(b []byte, name string, e *Event) []byte {
	a := e.SAddr
	if name == "daddr" {
		a = e.DAddr
	}
	if !a.IsValid() {
		return appendStr(b, name, "")
	}
	b = append(b, `,"`...)
	b = append(b, name...)
	b = append(b, `":"`...)
	b = a.AppendTo(b)
	return append(b, '"')
}

func appendUint(b []byte, name string, v uint64) []byte {
	b = append(b, `,"`...)
	b = append(b, name...)
	b = append(b, `":`...)
	return strconv.AppendUint(b, v, 10)
}

func appendInt(b []byte, name string, v int64) []byte {
	b = append(b, `,"`...)
	b = append(b, name...)
	b = append(b, `":`...)
	return strconv.AppendInt(b, v, 10)
}

func appendBool(b []byte, name string, v bool) []byte {
	b = append(b, `,"`...)
	b = append(b, name...)
	b = append(b, `":`...)
	return strconv.AppendBool(b, v)
}

func appendStr(b []byte, name, v string) []byte {
	b = append(b, `,`...)
	b = appendQuoted(b, name)
	b = append(b, ':')
	return appendQuoted(b, v)
}

// appendQuoted writes a JSON string; comm and attribute values come from outside, so
// control characters and invalid UTF-8 are escaped rather than trusted.
func appendQuoted(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
