package eventlog

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/kprobe/kprobe/pipeline/span"
)

// SpanQuery selects spans: those of one trace and/or those carrying an attribute value
// (settlement.id = 4821). At least one of TraceID and AttrKey is required.
type SpanQuery struct {
	TraceID   string
	AttrKey   string
	AttrValue string
	Limit     int // 0: all
}

// spansSelect reads the spans matching q, by start time.
func (b builder) spansSelect(q SpanQuery) stmt {
	var conds []string
	var params []param
	if q.TraceID != "" {
		conds = append(conds, "trace_id = {trace_id:String}")
		params = append(params, param{"trace_id", q.TraceID})
	}
	if q.AttrKey != "" {
		conds = append(conds, "attrs[{attr_key:String}] = {attr_value:String}")
		params = append(params, param{"attr_key", q.AttrKey}, param{"attr_value", q.AttrValue})
	}
	sql := "SELECT " + spans.selectList() + " FROM " + b.spansTable() + " FINAL WHERE " + strings.Join(conds, " AND ") +
		" ORDER BY start_ns, trace_id, span_id"
	if q.Limit > 0 {
		sql += " LIMIT " + strconv.Itoa(q.Limit)
	}
	return stmt{sql: sql, params: params}
}

// Spans returns the spans matching q, by start time: what an on-demand causal chain reads
// to know a business object's spans.
func (l *Log) Spans(ctx context.Context, q SpanQuery) ([]span.Span, error) {
	if q.TraceID == "" && q.AttrKey == "" {
		return nil, errors.New("querying spans: give a trace ID or an attribute")
	}
	out, err := queryRows(ctx, l, spans, l.b.spansSelect(q))
	if err != nil {
		return nil, fmt.Errorf("querying spans: %w", err)
	}
	return out, nil
}
