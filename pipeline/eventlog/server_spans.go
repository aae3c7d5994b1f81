package eventlog

import (
	"context"
	"fmt"

	"github.com/kprobe/kprobe/pipeline/span"
)

// InsertSpans sends spans as one native-protocol block.
func (s *server) InsertSpans(ctx context.Context, spans []span.Span) (err error) {
	if len(spans) == 0 {
		return nil
	}
	batch, err := s.conn.PrepareBatch(ctx, s.b.insertSpans())
	if err != nil {
		return fmt.Errorf("inserting spans: %w", err)
	}
	defer func() {
		if cerr := batch.Close(); err == nil && cerr != nil && !batch.IsSent() {
			err = fmt.Errorf("inserting spans: %w", cerr)
		}
	}()
	for i := range spans {
		sp := &spans[i]
		attrs := sp.Attrs
		if attrs == nil {
			attrs = map[string]string{}
		}
		if err := batch.Append(sp.TraceID, sp.SpanID, sp.ParentID, sp.Name, sp.Service, sp.Host,
			sp.PID, sp.TID, sp.StartNs, sp.EndNs, sp.Status, attrs); err != nil {
			return fmt.Errorf("inserting spans: row %d: %w", i, err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("inserting spans: %w", err)
	}
	return nil
}

// Settlements implements Store.
func (s *server) Settlements(ctx context.Context, q SettlementQuery) ([]Settlement, error) {
	st := s.b.settlements(q)
	rows, err := s.conn.Query(ctx, st.sql, args(st)...)
	if err != nil {
		return nil, fmt.Errorf("querying settlements: %w", err)
	}
	defer rows.Close()
	var out []Settlement
	for rows.Next() {
		var st Settlement
		if err := rows.Scan(&st.ID, &st.TraceID, &st.StartNs, &st.EndNs, &st.Service, &st.Host, &st.PID, &st.Spans); err != nil {
			return nil, fmt.Errorf("querying settlements: %w", err)
		}
		out = append(out, st)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("querying settlements: %w", err)
	}
	return out, nil
}
