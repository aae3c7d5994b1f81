package neo4j

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	driver "github.com/neo4j/neo4j-go-driver/v5/neo4j"
	"github.com/neo4j/neo4j-go-driver/v5/neo4j/config"

	"github.com/kprobe/kprobe/pipeline/causal"
)

// Options configure a Store. URI is required; the rest have defaults.
type Options struct {
	// URI of the server: bolt://, bolt+s://, bolt+ssc:// (self-signed), neo4j://,
	// neo4j+s:// or neo4j+ssc://.
	URI string
	// User defaults to "neo4j". Password, or else the first line of PasswordFile, is
	// its password; with neither the driver connects without authentication.
	User         string
	Password     string
	PasswordFile string
	// CAFile holds PEM certificates to trust for bolt+s:// and neo4j+s:// beside the
	// system's, for a server whose certificate a private CA signed. Other schemes
	// ignore it.
	CAFile string
	// Database defaults to the server's default database (Community has only one).
	Database string
	// BatchRows is the most nodes plus edges written in one transaction (default 5,000):
	// larger writes are split, so a big write does not hold the server's heap.
	BatchRows int
	// Writers is how many of a large write's transactions are committed at once
	// (default 2): one transaction keeps one server core busy.
	Writers int
	Logger  *slog.Logger
}

// Environment variables EnvOptions reads; the Makefile exports them for tests and
// benchmarks, and the commands offer them as fallbacks of their --neo4j flags.
const (
	EnvURI          = "KPROBE_NEO4J_URI"
	EnvUser         = "KPROBE_NEO4J_USER"
	EnvPassword     = "KPROBE_NEO4J_PASSWORD"
	EnvPasswordFile = "KPROBE_NEO4J_PASSWORD_FILE"
	EnvCAFile       = "KPROBE_NEO4J_CA_FILE"
)

// EnvOptions reads Options from the KPROBE_NEO4J_* variables (getenv is os.Getenv outside
// tests). URI is empty when KPROBE_NEO4J_URI is unset.
func EnvOptions(getenv func(string) string) Options {
	return Options{
		URI:          getenv(EnvURI),
		User:         getenv(EnvUser),
		Password:     getenv(EnvPassword),
		PasswordFile: getenv(EnvPasswordFile),
		CAFile:       getenv(EnvCAFile),
	}
}

func (o Options) withDefaults() (Options, error) {
	if o.URI == "" {
		return o, errors.New("neo4j: no server URI: give --neo4j bolt://HOST:7687 (or set " + EnvURI + ")")
	}
	u, err := url.Parse(o.URI)
	if err != nil || u.Host == "" {
		return o, fmt.Errorf("neo4j: bad URI %q: want bolt://HOST:PORT, bolt+s://, neo4j:// or neo4j+s://", o.URI)
	}
	switch u.Scheme {
	case "bolt", "bolt+s", "bolt+ssc", "neo4j", "neo4j+s", "neo4j+ssc":
	default:
		return o, fmt.Errorf("neo4j: URI scheme %q not supported: want bolt, bolt+s, bolt+ssc, neo4j, neo4j+s or neo4j+ssc", u.Scheme)
	}
	if o.User == "" {
		o.User = "neo4j"
	}
	if o.Password == "" && o.PasswordFile != "" {
		b, err := os.ReadFile(o.PasswordFile)
		if err != nil {
			return o, fmt.Errorf("neo4j: reading the password file: %w (start the server with `make neo4j-up`, or fix --neo4j-password-file / %s)", err, EnvPasswordFile)
		}
		o.Password, _, _ = strings.Cut(string(b), "\n")
		o.Password = strings.TrimRight(o.Password, "\r")
		if o.Password == "" {
			return o, fmt.Errorf("neo4j: password file %s is empty", o.PasswordFile)
		}
	}
	if o.BatchRows <= 0 {
		o.BatchRows = 5_000
	}
	if o.Writers <= 0 {
		o.Writers = 2
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}

// Store is a causal.Writer and causal.Reader over one Neo4j server.
type Store struct {
	drv  driver.DriverWithContext
	opts Options
	log  *slog.Logger
}

var (
	_ causal.Writer = (*Store)(nil)
	_ causal.Reader = (*Store)(nil)
)

// Open connects, checks the credentials, creates the schema when missing and plans the
// chain queries. Its errors are one line naming the fix (server down, wrong password,
// untrusted certificate).
func Open(ctx context.Context, opts Options) (*Store, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	auth := driver.NoAuth()
	if opts.Password != "" {
		auth = driver.BasicAuth(opts.User, opts.Password, "")
	}
	var pool *x509.CertPool
	if opts.CAFile != "" && strings.HasSuffix(strings.SplitN(opts.URI, "://", 2)[0], "+s") {
		pem, err := os.ReadFile(opts.CAFile)
		if err != nil {
			return nil, fmt.Errorf("neo4j: reading the CA file: %w", err)
		}
		if pool, err = x509.SystemCertPool(); err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("neo4j: CA file %s holds no PEM certificate", opts.CAFile)
		}
	}
	drv, err := driver.NewDriverWithContext(opts.URI, auth, func(c *config.Config) {
		if pool != nil {
			c.TlsConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		}
	})
	if err != nil {
		return nil, fmt.Errorf("neo4j: %w", err)
	}
	s := &Store{drv: drv, opts: opts, log: opts.Logger.With("component", "graphstore", "store", "neo4j")}
	if err := drv.VerifyConnectivity(ctx); err != nil {
		drv.Close(context.WithoutCancel(ctx))
		return nil, explain(opts, err)
	}
	if err := s.ensureSchema(ctx); err != nil {
		drv.Close(context.WithoutCancel(ctx))
		return nil, explain(opts, err)
	}
	if err := s.warmUp(ctx); err != nil {
		drv.Close(context.WithoutCancel(ctx))
		return nil, explain(opts, fmt.Errorf("planning the chain queries: %w", err))
	}
	s.log.Debug("neo4j graph store open", "uri", opts.URI, "user", opts.User)
	return s, nil
}

// explain turns the driver's errors at connection time into one line naming the fix.
func explain(o Options, err error) error {
	var nerr *driver.Neo4jError
	var terr *tls.CertificateVerificationError
	var uerr x509.UnknownAuthorityError
	switch {
	case errors.As(err, &nerr) && strings.HasPrefix(nerr.Code, "Neo.ClientError.Security."):
		return fmt.Errorf("neo4j at %s refused user %q (%s): wrong user or password: fix --neo4j-password-file / %s (the test server's is in ${KPROBE_CACHE:-~/.cache/kprobe}/neo4j/password)",
			o.URI, o.User, nerr.Code, EnvPasswordFile)
	case errors.As(err, &terr) || errors.As(err, &uerr) || strings.Contains(err.Error(), "x509:") || strings.Contains(err.Error(), "tls:"):
		return fmt.Errorf("neo4j at %s: TLS failed (%v): trust the server's CA with %s, or use bolt+ssc:// for a self-signed certificate", o.URI, err, EnvCAFile)
	case driver.IsConnectivityError(err) || errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("neo4j at %s unreachable (%v): start it (make neo4j-up, scripts/neo4j/neo4j.sh start) or fix --neo4j / %s", o.URI, err, EnvURI)
	}
	return fmt.Errorf("neo4j at %s: %w", o.URI, err)
}

// Close releases the driver's connections.
func (s *Store) Close() error {
	return s.drv.Close(context.Background())
}

func (s *Store) session(ctx context.Context, mode driver.AccessMode) driver.SessionWithContext {
	return s.drv.NewSession(ctx, driver.SessionConfig{AccessMode: mode, DatabaseName: s.opts.Database})
}

var schema = []string{
	"CREATE CONSTRAINT kprobe_node_id IF NOT EXISTS FOR (n:KprobeNode) REQUIRE n._id IS UNIQUE",
}

func (s *Store) ensureSchema(ctx context.Context) error {
	sess := s.session(ctx, driver.AccessModeWrite)
	defer sess.Close(context.WithoutCancel(ctx))
	for _, q := range schema {
		// Schema statements cannot share a transaction with writes: auto-commit them, and
		// retry by hand when stores opening at the same moment deadlock on the schema lock.
		var err error
		for attempt := 0; attempt < 10; attempt++ {
			var res driver.ResultWithContext
			if res, err = sess.Run(ctx, q, nil); err == nil {
				_, err = res.Consume(ctx)
			}
			var nerr *driver.Neo4jError
			if errors.As(err, &nerr) && nerr.Code == "Neo.ClientError.Schema.EquivalentSchemaRuleAlreadyExists" {
				err = nil // another store created it at the same moment
			}
			if err == nil || !driver.IsRetryable(err) {
				break
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Duration(attempt+1) * 50 * time.Millisecond):
			}
		}
		if err != nil {
			return fmt.Errorf("creating schema: %w", err)
		}
	}
	// MERGE on _id is a scan until the constraint's index is online.
	res, err := sess.Run(ctx, "CALL db.awaitIndexes(300)", nil)
	if err == nil {
		_, err = res.Consume(ctx)
	}
	if err != nil {
		return fmt.Errorf("waiting for the schema's indexes: %w", err)
	}
	return nil
}

// warmUp runs the read queries once on a root that does not exist: Neo4j plans and
// compiles a query on its first call (about a second here), which must not be the
// first investigation's wait. Write queries are planned on first use, one per label
// and edge type.
func (s *Store) warmUp(ctx context.Context) error {
	const nowhere = "\x00kprobe-warm-up"
	sess := s.session(ctx, driver.AccessModeRead)
	defer sess.Close(context.WithoutCancel(ctx))
	for _, q := range []struct {
		text   string
		params map[string]any
	}{
		{causesQuery, map[string]any{"root": nowhere, "limit": 1}},
		{rootQuery, map[string]any{"root": nowhere}},
		{levelQuery, map[string]any{"ids": []any{nowhere}}},
	} {
		res, err := sess.Run(ctx, q.text, q.params)
		if err == nil {
			_, err = res.Consume(ctx)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Delete removes every node whose ID starts with idPrefix, with its edges, in
// transactions of 10,000 nodes. Tests and benchmarks sharing one server clean up with it.
func (s *Store) Delete(ctx context.Context, idPrefix string) error {
	if idPrefix == "" {
		return errors.New("neo4j: delete: empty ID prefix would delete the whole graph")
	}
	sess := s.session(ctx, driver.AccessModeWrite)
	defer sess.Close(context.WithoutCancel(ctx))
	// CALL { } IN TRANSACTIONS needs an auto-commit transaction: Run, not ExecuteWrite.
	res, err := sess.Run(ctx, `MATCH (n:KprobeNode) WHERE n._id STARTS WITH $p
CALL { WITH n DETACH DELETE n } IN TRANSACTIONS OF 10000 ROWS`, map[string]any{"p": idPrefix})
	if err == nil {
		_, err = res.Consume(ctx)
	}
	if err != nil {
		return fmt.Errorf("neo4j: deleting %q...: %w", idPrefix, err)
	}
	return nil
}
