package eventlog

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// server is the backend over a ClickHouse server.
type server struct {
	conn      driver.Conn
	closeOnce sync.Once
}

// OpenServer connects to a ClickHouse server over the native protocol and prepares the
// schema. addr is host:port (default database "default", no password) or a clickhouse://
// DSN with credentials and settings.
func OpenServer(ctx context.Context, addr string, opts Options) (*Log, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	chOpts, err := serverOptions(addr, opts.Server)
	if err != nil {
		return nil, err
	}
	conn, err := clickhouse.Open(chOpts)
	if err != nil {
		return nil, fmt.Errorf("connecting to clickhouse %s: %w", redact(addr), err)
	}
	if err := conn.Ping(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("connecting to clickhouse %s: %w", redact(addr), err)
	}
	l, err := newServer(ctx, conn, opts)
	if err != nil {
		conn.Close()
		return nil, err
	}
	opts.Logger.Debug("clickhouse event log open", "addr", redact(addr), "database", opts.Database)
	return l, nil
}

// serverOptions is the driver's configuration for addr (host:port or a clickhouse:// DSN)
// with auth's TLS and credentials on top.
func serverOptions(addr string, auth ServerAuth) (*clickhouse.Options, error) {
	var chOpts *clickhouse.Options
	if strings.Contains(addr, "://") {
		var err error
		if chOpts, err = clickhouse.ParseDSN(addr); err != nil {
			return nil, fmt.Errorf("clickhouse address: %w", err)
		}
	} else {
		chOpts = &clickhouse.Options{Addr: []string{addr}}
	}
	if auth.TLS != nil {
		chOpts.TLS = auth.TLS
	}
	if auth.User != "" {
		chOpts.Auth.Username, chOpts.Auth.Password = auth.User, auth.Password
	}
	return chOpts, nil
}

// redact drops the credentials from a DSN before it is printed.
func redact(addr string) string {
	if i, j := strings.Index(addr, "://"), strings.LastIndex(addr, "@"); i >= 0 && j > i {
		return addr[:i+3] + "***" + addr[j:]
	}
	return addr
}

func newServer(ctx context.Context, conn driver.Conn, opts Options) (*Log, error) {
	l := &Log{be: &server{conn: conn}, b: newBuilder(opts.Database), opts: opts}
	if err := l.ensureSchema(ctx); err != nil {
		return nil, fmt.Errorf("clickhouse event log: preparing schema: %w", err)
	}
	return l, nil
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

// insert sends the rows as one native-protocol batch.
func (s *server) insert(ctx context.Context, into string, b outgoing) (err error) {
	ctx = clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{insertSetting: 0}))
	batch, err := s.conn.PrepareBatch(ctx, into)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := batch.Close(); err == nil && cerr != nil && !batch.IsSent() {
			err = cerr
		}
	}()
	row, n := []any(nil), 0
	for f := range b.blocks() {
		row = slices.Grow(row[:0], len(f.cols))[:len(f.cols)]
		for i := range f.rows() {
			for j, c := range f.cols {
				row[j] = c.value(i)
			}
			if err := batch.Append(row...); err != nil {
				return fmt.Errorf("row %d: %w", n, err)
			}
			n++
		}
	}
	return batch.Send()
}

// serverFlushRows is how many scanned rows are decoded at a time.
const serverFlushRows = 8192

// query scans each row into f's columns, and flushes them every serverFlushRows.
func (s *server) query(ctx context.Context, st stmt, f *frame, flush func()) error {
	rows, err := s.conn.Query(ctx, st.sql, args(st)...)
	if err != nil {
		return err
	}
	defer rows.Close()
	dest := make([]any, len(f.cols))
	for _, c := range f.cols {
		c.Reset()
	}
	n := 0
	for rows.Next() {
		for j, c := range f.cols {
			dest[j] = c.scan()
		}
		if err := rows.Scan(dest...); err != nil {
			return fmt.Errorf("row %d: %w", n, err)
		}
		for _, c := range f.cols {
			c.putScanned()
		}
		if n++; n%serverFlushRows == 0 {
			flush()
			for _, c := range f.cols {
				c.Reset()
			}
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if f.rows() > 0 {
		flush()
	}
	return nil
}

func (s *server) close() error {
	var err error
	s.closeOnce.Do(func() {
		if cerr := s.conn.Close(); cerr != nil && !errors.Is(cerr, context.Canceled) {
			err = fmt.Errorf("closing clickhouse connection: %w", cerr)
		}
	})
	return err
}
