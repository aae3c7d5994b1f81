package otlp

import (
	"math"
	"strconv"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kprobe/kprobe/pipeline/span"
)

// Semantic-convention attribute keys the conversion reads.
const (
	attrServiceName = "service.name"
	attrHostName    = "host.name"
	attrProcessPID  = "process.pid"
	attrThreadID    = "thread.id"
	attrThreadName  = "thread.name"
)

// Converter turns OTLP traces into spans. The zero value keeps the default business
// attributes.
type Converter struct {
	Business span.Business
}

// Convert returns the spans of td. Spans without a trace or span ID, or that end before
// they start, cannot be joined and are rejected: the count is returned so a receiver can
// report it as an OTLP partial success.
//
// Business attributes come from the resource and then the span (the span's win); all
// other attributes are dropped. thread.id and thread.name are read from the span, else
// the resource.
func (c Converter) Convert(td ptrace.Traces) (spans []span.Span, rejected int) {
	spans = make([]span.Span, 0, td.SpanCount())
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		rs := rss.At(i)
		res := rs.Resource().Attributes()
		var proc span.Span
		if v, ok := res.Get(attrServiceName); ok {
			proc.Service = v.AsString()
		}
		if v, ok := res.Get(attrHostName); ok {
			proc.Host = v.AsString()
		}
		if v, ok := res.Get(attrProcessPID); ok {
			proc.PID = uint32Value(v)
		}
		if v, ok := res.Get(attrThreadID); ok {
			proc.TID = uint32Value(v)
		}
		if v, ok := res.Get(attrThreadName); ok {
			proc.ThreadName = v.AsString()
		}
		resAttrs := c.business(nil, res)

		sss := rs.ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			ss := sss.At(j).Spans()
			for k := 0; k < ss.Len(); k++ {
				s := ss.At(k)
				start, end := int64(s.StartTimestamp()), int64(s.EndTimestamp())
				if s.TraceID().IsEmpty() || s.SpanID().IsEmpty() || end < start || start < 0 {
					rejected++
					continue
				}
				out := proc
				out.TraceID = s.TraceID().String()
				out.SpanID = s.SpanID().String()
				out.ParentID = s.ParentSpanID().String()
				out.Name = s.Name()
				out.StartNs, out.EndNs = start, end
				out.Status = statusString(s.Status().Code())
				if v, ok := s.Attributes().Get(attrThreadID); ok {
					out.TID = uint32Value(v)
				}
				if v, ok := s.Attributes().Get(attrThreadName); ok {
					out.ThreadName = v.AsString()
				}
				out.Attrs = c.business(resAttrs, s.Attributes())
				spans = append(spans, out)
			}
		}
	}
	return spans, rejected
}

// business returns base plus the business attributes of m, allocating only when m has
// some; base is never modified, and is returned as is (shared) when m adds nothing.
func (c Converter) business(base map[string]string, m pcommon.Map) map[string]string {
	var out map[string]string
	m.Range(func(k string, v pcommon.Value) bool {
		if !c.Business.Keep(k) {
			return true
		}
		if out == nil {
			out = make(map[string]string, len(base)+m.Len())
			for bk, bv := range base {
				out[bk] = bv
			}
		}
		out[k] = v.AsString()
		return true
	})
	if out == nil {
		return base
	}
	return out
}

// uint32Value reads a pid or tid, sent as an int by the SDKs and sometimes as a string.
func uint32Value(v pcommon.Value) uint32 {
	switch v.Type() {
	case pcommon.ValueTypeInt:
		if n := v.Int(); n >= 0 && n <= math.MaxUint32 {
			return uint32(n)
		}
	case pcommon.ValueTypeStr:
		if n, err := strconv.ParseUint(v.Str(), 10, 32); err == nil {
			return uint32(n)
		}
	case pcommon.ValueTypeDouble:
		if f := v.Double(); f >= 0 && f <= math.MaxUint32 && f == math.Trunc(f) {
			return uint32(f)
		}
	}
	return 0
}

func statusString(c ptrace.StatusCode) string {
	switch c {
	case ptrace.StatusCodeOk:
		return span.StatusOK
	case ptrace.StatusCodeError:
		return span.StatusError
	}
	return span.StatusUnset
}
