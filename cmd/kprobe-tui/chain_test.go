package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// The chain command end to end against a real recording is in kprobe-demo's accuracy
// test; here, what it refuses.
func TestChainErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nothing-here")
	business := filepath.Join(t.TempDir(), "nope.toml")
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"chain", "--data", missing}, "give one subject"},
		{[]string{"chain", "--data", missing, "--settlement", "1", "--payment", "2"}, "give one subject"},
		{[]string{"chain", "--data", missing, "--kind", "netting_run"}, "--kind and --id go together"},
		{[]string{"chain", "--data", missing, "--settlement", "1", "--format", "xml"}, `--format "xml"`},
		{[]string{"chain", "--data", missing, "--settlement", "1", "--business", business}, "reading business mapping"},
		{[]string{"chain", "--settlement", "1"}, "no store given"},
		{[]string{"chain", "--data", missing, "--settlement", "1"}, "no event log under " + missing},
		{[]string{"chain", "--clickhouse", "ch:9000", "--settlement", "1"}, "--clickhouse needs --neo4j"},
		{[]string{"chain", "--data", "x", "--clickhouse", "y:1", "--settlement", "1"}, "either --data or --clickhouse"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			t.Setenv("KPROBE_CLICKHOUSE_ADDR", "")
			t.Setenv("KPROBE_DATA", "")
			t.Setenv("KPROBE_NEO4J_URI", "")
			var out, errb bytes.Buffer
			err := run(context.Background(), tt.args, &out, &errb)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}
