package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/kprobe/kprobe/api/server"
	"github.com/kprobe/kprobe/api/server/servertest"
	"github.com/kprobe/kprobe/pipeline/investigate/investigatetest"
)

func TestWorkstationErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--data", "x", "--api", "y:1"}, "needs a terminal"}, // the terminal is checked first
		{[]string{"--settlement", "1", "--payment", "2"}, "not both"},
		{[]string{"--data", "x", "stray"}, `unknown command "stray"`},
		{[]string{"report", "--data", "x"}, "which report?"},
		{[]string{"report", "--settlement", "4821"}, "no data given: use --data DIR"},
		{[]string{"report", "--settlement", "4821", "--data", "x", "--api", "y:1"}, "either --data or --api"},
		{[]string{"report", "--settlement", "4821", "--api", "nonsense"}, `api address "nonsense"`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			t.Setenv("KPROBE_DATA", "")
			t.Setenv("KPROBE_API", "")
			var out, errb bytes.Buffer
			err := run(context.Background(), tt.args, &out, &errb)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

// serveAPI serves the in-memory incident of n events over the API on loopback and
// returns its address.
func serveAPI(t *testing.T, n int) string {
	t.Helper()
	return servertest.Serve(t, server.Options{Service: investigatetest.New(n)}, server.ListenConfig{}).Addr()
}

// `report --api` builds the same report through the API as in process.
func TestReportOverTheAPI(t *testing.T) {
	addr := serveAPI(t, 100)
	ctx := context.Background()
	var out, errb bytes.Buffer
	if err := run(ctx, []string{"report", "--api", addr, "--settlement", "4821"}, &out, &errb); err != nil {
		t.Fatalf("report: %v\n%s", err, errb.String())
	}
	for _, want := range []string{"# Incident report: settlement 4821", "### Cause #1: storage",
		"kprobe-tui chain --api " + addr + " --settlement 4821"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
	err := run(ctx, []string{"report", "--api", addr, "--settlement", "999999"}, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("report of an unknown settlement: err = %v, want not found", err)
	}
}
