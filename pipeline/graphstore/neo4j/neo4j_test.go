package neo4j

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kprobe/kprobe/pipeline/causal"
	"github.com/kprobe/kprobe/pipeline/graphstore/storetest"
)

// testOptions reads the server `make test` starts (scripts/neo4j/neo4j.sh); without it the
// test skips, which `make test` does not allow.
func testOptions(t testing.TB) Options {
	t.Helper()
	if testing.Short() {
		t.Skip("needs the Neo4j server (-short)")
	}
	o := EnvOptions(os.Getenv)
	if o.URI == "" {
		t.Skip(EnvURI + " unset: start Neo4j with `make neo4j-up` and export what `scripts/neo4j/neo4j.sh env` prints")
	}
	return o
}

func TestContract(t *testing.T) {
	opts := testOptions(t)
	storetest.Run(t, func(t *testing.T, prefix string) func() (storetest.Store, error) {
		t.Cleanup(func() { deletePrefix(t, opts, prefix) })
		return func() (storetest.Store, error) { return Open(context.Background(), opts) }
	})
}

// deletePrefix removes one test's nodes: every test shares the server's one database.
func deletePrefix(t testing.TB, opts Options, prefix string) {
	t.Helper()
	s, err := Open(context.Background(), opts)
	if err != nil {
		t.Errorf("cleanup: %v", err)
		return
	}
	defer s.Close()
	if err := s.Delete(context.Background(), prefix); err != nil {
		t.Errorf("cleanup: %v", err)
	}
}

// openTest opens a store on the test server for one test, with an ID prefix of its own
// whose nodes are deleted when the test ends.
func openTest(t *testing.T, name string) (s *Store, prefix string) {
	t.Helper()
	opts := testOptions(t)
	s, err := Open(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	prefix = fmt.Sprintf("kprobe-test-%s-%d/", name, time.Now().UnixNano())
	t.Cleanup(func() { deletePrefix(t, opts, prefix) })
	return s, prefix
}

func TestDeleteRemovesOnlyThePrefix(t *testing.T) {
	ctx := context.Background()
	s, p := openTest(t, "delete")
	g := causal.Graph{
		Nodes: []causal.Node{{ID: p + "a/1", Label: causal.LabelSpan}, {ID: p + "b/1", Label: causal.LabelSpan}},
		Edges: []causal.Edge{{From: p + "a/1", To: p + "b/1", Type: "CHILD_OF"}},
	}
	if err := s.Write(ctx, g); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, p+"a/"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Subgraph(ctx, p+"a/1", 1); !errors.Is(err, causal.ErrNotFound) {
		t.Errorf("deleted node still there: %v", err)
	}
	if got, err := s.Subgraph(ctx, p+"b/1", 1); err != nil || len(got.Nodes) != 1 || len(got.Edges) != 0 {
		t.Errorf("the other node: %v, %v (want it alone, its edge gone with a/1)", got, err)
	}
	if err := s.Delete(ctx, ""); err == nil {
		t.Errorf("Delete with an empty prefix succeeded")
	}
}

func TestOpenErrorsNameTheFix(t *testing.T) {
	good := testOptions(t)
	dir := t.TempDir()
	wrong := filepath.Join(dir, "wrong")
	if err := os.WriteFile(wrong, []byte("not-the-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		mod  func(*Options)
		want []string
	}{
		{"no URI", func(o *Options) { o.URI = "" }, []string{"no server URI", "--neo4j"}},
		{"bad scheme", func(o *Options) { o.URI = "http://127.0.0.1:7474" }, []string{`scheme "http" not supported`}},
		// A user of its own, so that the failed attempts never lock the shared user out.
		{"wrong password", func(o *Options) { o.User, o.Password, o.PasswordFile = "kprobe_nobody", "", wrong },
			[]string{"refused user", "wrong user or password", EnvPasswordFile}},
		{"missing password file", func(o *Options) { o.Password, o.PasswordFile = "", filepath.Join(dir, "nope") },
			[]string{"reading the password file", "make neo4j-up"}},
		{"empty password file", func(o *Options) { o.Password, o.PasswordFile = "", empty }, []string{"is empty"}},
		{"unreachable", func(o *Options) { o.URI = "bolt://127.0.0.1:1" }, []string{"unreachable", "make neo4j-up"}},
		{"TLS without trusting the server's CA", func(o *Options) {
			o.URI, o.CAFile = strings.Replace(good.URI, "bolt://", "bolt+s://", 1), ""
		}, []string{"TLS failed", EnvCAFile, "bolt+ssc://"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := good
			tc.mod(&o)
			s, err := Open(context.Background(), o)
			if err == nil {
				s.Close()
				t.Fatalf("Open succeeded")
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") {
				t.Errorf("error is more than one line: %q", msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q lacks %q", msg, w)
				}
			}
		})
	}
	// The same options, unmodified, open: the failures above came from the changes.
	s, err := Open(context.Background(), good)
	if err != nil {
		t.Fatalf("Open with the good options: %v", err)
	}
	s.Close()
}

// TestTLS talks bolt+s:// to the test server (scripts/neo4j/neo4j.sh gives it a certificate
// its own CA signed): verified with the CA file, and bolt+ssc:// without it.
func TestTLS(t *testing.T) {
	opts := testOptions(t)
	if opts.CAFile == "" {
		t.Skip(EnvCAFile + " unset: export what `scripts/neo4j/neo4j.sh env` prints")
	}
	ctx := context.Background()
	for _, tc := range []struct {
		scheme string
		ca     bool
	}{{"bolt+s", true}, {"bolt+ssc", false}} {
		t.Run(tc.scheme, func(t *testing.T) {
			o := opts
			o.URI = strings.Replace(opts.URI, "bolt://", tc.scheme+"://", 1)
			if !tc.ca {
				o.CAFile = ""
			}
			s, err := Open(ctx, o)
			if err != nil {
				t.Fatalf("Open(%s): %v", o.URI, err)
			}
			defer s.Close()
			id := fmt.Sprintf("kprobe-test-tls-%d/%s", time.Now().UnixNano(), tc.scheme)
			t.Cleanup(func() { deletePrefix(t, opts, id) })
			if err := s.Write(ctx, causal.Graph{Nodes: []causal.Node{{ID: id, Label: causal.LabelSettlement}}}); err != nil {
				t.Fatal(err)
			}
			if g, err := s.Subgraph(ctx, id, 0); err != nil || len(g.Nodes) != 1 {
				t.Errorf("read back over %s: %v, %v", tc.scheme, g, err)
			}
		})
	}
}
