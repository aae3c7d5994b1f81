package eventlog

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/kprobe/kprobe/pipeline/event"
)

// server is the Store over a ClickHouse server.
type server struct {
	conn driver.Conn
	b    builder
	opts Options

	closeOnce sync.Once
}

// OpenServer connects to a ClickHouse server over the native protocol and prepares the
// schema. addr is host:port (default database "default", no password) or a clickhouse://
// DSN with credentials and settings.
func OpenServer(ctx context.Context, addr string, opts Options) (Store, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	var chOpts *clickhouse.Options
	if strings.Contains(addr, "://") {
		if chOpts, err = clickhouse.ParseDSN(addr); err != nil {
			return nil, fmt.Errorf("clickhouse address: %w", err)
		}
	} else {
		chOpts = &clickhouse.Options{Addr: []string{addr}}
	}
	conn, err := clickhouse.Open(chOpts)
	if err != nil {
		return nil, fmt.Errorf("connecting to clickhouse %s: %w", redact(addr), err)
	}
	if err := conn.Ping(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("connecting to clickhouse %s: %w", redact(addr), err)
	}
	s, err := newServer(ctx, conn, opts)
	if err != nil {
		conn.Close()
		return nil, err
	}
	opts.Logger.Debug("clickhouse event log open", "addr", redact(addr), "database", opts.Database)
	return s, nil
}

// redact drops the credentials from a DSN before it is printed.
func redact(addr string) string {
	if i, j := strings.Index(addr, "://"), strings.LastIndex(addr, "@"); i >= 0 && j > i {
		return addr[:i+3] + "***" + addr[j:]
	}
	return addr
}

func newServer(ctx context.Context, conn driver.Conn, opts Options) (*server, error) {
	s := &server{conn: conn, b: newBuilder(opts.Database), opts: opts}
	if err := ensureSchema(ctx, s, s.b, opts.RetentionDays); err != nil {
		return nil, fmt.Errorf("clickhouse event log: preparing schema: %w", err)
	}
	return s, nil
}

// args passes a statement's parameters as named args: clickhouse-go sends them as
// server-side {name:Type} parameters, escaped as ClickHouse reads them.
func args(st stmt) []any {
	out := make([]any, len(st.params))
	for i, p := range st.params {
		out[i] = clickhouse.Named(p.name, p.value)
	}
	return out
}

func (s *server) exec(ctx context.Context, sql string) error {
	return s.conn.Exec(ctx, sql)
}

func (s *server) queryString(ctx context.Context, st stmt) (string, error) {
	var out string
	err := s.conn.QueryRow(ctx, st.sql, args(st)...).Scan(&out)
	return out, err
}

// Insert sends the batch as one native-protocol block.
func (s *server) Insert(ctx context.Context, events []event.Event) (err error) {
	if len(events) == 0 {
		return nil
	}
	ctx = clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{insertSetting: 0}))
	batch, err := s.conn.PrepareBatch(ctx, s.b.insert())
	if err != nil {
		return fmt.Errorf("inserting events: %w", err)
	}
	defer func() {
		if cerr := batch.Close(); err == nil && cerr != nil && !batch.IsSent() {
			err = fmt.Errorf("inserting events: %w", cerr)
		}
	}()
	for i := range events {
		if err := batch.Append(rowValues(&events[i])...); err != nil {
			return fmt.Errorf("inserting events: row %d: %w", i, err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("inserting events: %w", err)
	}
	return nil
}

// rowValues is e in column order, as the driver's columns accept it.
func rowValues(e *event.Event) []any {
	attrs := e.Attrs
	if attrs == nil {
		attrs = map[string]string{}
	}
	return []any{
		e.ID, e.TsNs, e.KtimeNs, e.Node, e.PID, e.TID, e.CPU, e.Comm, e.CgroupID, uint8(e.Type), e.DurNs,
		e.Syscall, e.FD, e.Bytes, e.Errno, e.Dev, e.Ino,
		addr16(e.SAddr), addr16(e.DAddr), e.SPort, e.DPort, addrFamilies(e),
		e.Preempted, e.NextPID, e.NextTID, e.NextComm, e.WakerPID, e.WakerTID, e.RunqDelayNs,
		e.Addr, e.IP, e.ErrorCode, e.KernelFault,
		string(e.Payload), e.TraceID, e.SpanID, e.Service, e.SpanName, e.Join, attrs,
	}
}

// scanRow holds what cannot be scanned straight into an event.Event field.
type scanRow struct {
	typ          uint8
	saddr, daddr [16]byte
	family       uint8
	payload      string
	attrs        map[string]string
}

// dest is the Scan destination list for e, in column order.
func (r *scanRow) dest(e *event.Event) []any {
	return []any{
		&e.ID, &e.TsNs, &e.KtimeNs, &e.Node, &e.PID, &e.TID, &e.CPU, &e.Comm, &e.CgroupID, &r.typ, &e.DurNs,
		&e.Syscall, &e.FD, &e.Bytes, &e.Errno, &e.Dev, &e.Ino,
		&r.saddr, &r.daddr, &e.SPort, &e.DPort, &r.family,
		&e.Preempted, &e.NextPID, &e.NextTID, &e.NextComm, &e.WakerPID, &e.WakerTID, &e.RunqDelayNs,
		&e.Addr, &e.IP, &e.ErrorCode, &e.KernelFault,
		&r.payload, &e.TraceID, &e.SpanID, &e.Service, &e.SpanName, &e.Join, &r.attrs,
	}
}

func (r *scanRow) finish(e *event.Event) {
	e.Type = event.Type(r.typ)
	e.SAddr, e.DAddr = addrFrom(r.saddr, r.family&3), addrFrom(r.daddr, r.family>>2&3)
	if r.payload != "" {
		e.Payload = []byte(r.payload)
	}
	if len(r.attrs) > 0 {
		e.Attrs = r.attrs
	}
}

func (s *server) events(ctx context.Context, st stmt) ([]event.Event, error) {
	rows, err := s.conn.Query(ctx, st.sql, args(st)...)
	if err != nil {
		return nil, fmt.Errorf("querying events: %w", err)
	}
	defer rows.Close()
	var out []event.Event
	for rows.Next() {
		var e event.Event
		var r scanRow
		if err := rows.Scan(r.dest(&e)...); err != nil {
			return nil, fmt.Errorf("querying events: row %d: %w", len(out), err)
		}
		r.finish(&e)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("querying events: %w", err)
	}
	return out, nil
}

func (s *server) Events(ctx context.Context, q Query) ([]event.Event, error) {
	return s.events(ctx, s.b.events(q))
}

func (s *server) SyscallLog(ctx context.Context, node string, pid uint32, from, to int64) ([]event.Event, error) {
	return s.events(ctx, s.b.events(syscallQuery(node, pid, from, to)))
}

func (s *server) Slowest(ctx context.Context, from, to int64, n int) ([]event.Event, error) {
	if n <= 0 {
		return nil, nil
	}
	return s.events(ctx, s.b.slowest(from, to, n))
}

func (s *server) Count(ctx context.Context, q Query) (uint64, error) {
	st := s.b.count(q)
	var n uint64
	if err := s.conn.QueryRow(ctx, st.sql, args(st)...).Scan(&n); err != nil {
		return 0, fmt.Errorf("counting events: %w", err)
	}
	return n, nil
}

func (s *server) Close() error {
	var err error
	s.closeOnce.Do(func() {
		if cerr := s.conn.Close(); cerr != nil && !errors.Is(cerr, context.Canceled) {
			err = fmt.Errorf("closing clickhouse connection: %w", cerr)
		}
	})
	return err
}

func (s *server) tableDDL(ctx context.Context) (string, error) {
	return s.queryString(ctx, s.b.createTableQuery())
}
