package investigate_test

import (
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/kprobe/kprobe/pipeline/investigate"
	"github.com/kprobe/kprobe/pipeline/investigate/investigatetest"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func incidentReport(t *testing.T, opts investigate.ReportOptions) investigate.Report {
	t.Helper()
	svc := investigatetest.New(200)
	r, err := investigate.BuildReport(context.Background(), svc,
		investigate.Ref{Kind: investigate.KindSettlement, ID: investigatetest.Incident}, opts)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func experiments() []investigate.Experiment {
	return []investigate.Experiment{
		{Timing: "recorded", ExitCode: 1, DurationNs: 812e6, Served: 120, Native: 14},
		{Tweaks: []string{"delay write -600ms"}, Timing: "recorded", ExitCode: 0, DurationNs: 190e6,
			Served: 120, Native: 14, Tweaked: 3, Command: "kprobe-tui replay --data /d --settlement 4821 --tweak 'delay write -600ms'"},
		{Tweaks: []string{"errno write EIO"}, Timing: "fast", ExitCode: 2, DurationNs: 3e6, Served: 40, Native: 14,
			Tweaked: 1, Divergent: 1, FirstDivergence: "write(7, 262144) retried: not in the recording"},
	}
}

func TestReportGolden(t *testing.T) {
	r := incidentReport(t, investigate.ReportOptions{Source: "--data /var/lib/kprobe", Experiments: experiments()})
	got := r.Markdown()
	path := filepath.Join("testdata", "report-4821.md")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("report differs from %s (-want +got):\n%s", path, diff)
	}
}

// The report must read as plain text: every table's lines are the same width, so its
// columns line up in a ticket that does not render markdown.
func TestReportTablesLineUp(t *testing.T) {
	md := string(incidentReport(t, investigate.ReportOptions{Experiments: experiments()}).Markdown())
	var table []string
	check := func() {
		for _, l := range table {
			if utf8.RuneCountInString(l) != utf8.RuneCountInString(table[0]) {
				t.Errorf("table line %q is not as wide as its header %q", l, table[0])
			}
		}
		table = table[:0]
	}
	tables := 0
	for _, l := range strings.Split(md, "\n") {
		if strings.HasPrefix(l, "|") {
			if len(table) == 0 {
				tables++
			}
			table = append(table, l)
			continue
		}
		check()
	}
	// timeline, chain, three evidence tables, experiments
	if tables != 6 {
		t.Errorf("found %d tables, want 6:\n%s", tables, md)
	}
}

func TestReportSections(t *testing.T) {
	tests := []struct {
		name string
		opts investigate.ReportOptions
		want []string
	}{
		{"no experiments", investigate.ReportOptions{}, []string{
			"# Incident report: settlement 4821",
			"- **Root cause:** three 256 KiB ledger writes to ledger.log waited 634 ms on storage (explains 634 ms, 78 % of the time; confidence 0.95).",
			"## Timeline", "## Causal chain", "### Cause #1: storage", "### Cause #3: slow_peer",
			"None were run.", "kprobe-tui --data DIR --settlement 4821",
		}},
		{"experiments and source", investigate.ReportOptions{Source: "--api kprobe:8443", Experiments: experiments()}, []string{
			"`delay write -600ms`", "Run 3 first diverged at: write(7, 262144) retried",
			"kprobe-tui chain --api kprobe:8443 --settlement 4821", "kprobe-tui replay --data /d --settlement 4821 --tweak 'delay write -600ms'",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			md := string(incidentReport(t, tt.opts).Markdown())
			for _, w := range tt.want {
				if !strings.Contains(md, w) {
					t.Errorf("report lacks %q:\n%s", w, md)
				}
			}
		})
	}
}

func TestReportNotFound(t *testing.T) {
	_, err := investigate.BuildReport(context.Background(), investigatetest.New(10),
		investigate.Ref{Kind: investigate.KindSettlement, ID: "999999"}, investigate.ReportOptions{})
	if !errors.Is(err, investigate.ErrNotFound) || !strings.Contains(err.Error(), "settlement 999999") {
		t.Fatalf("err = %v, want a not-found error naming settlement 999999", err)
	}
}

type failingWriter struct{ after int }

func (f *failingWriter) Write(p []byte) (int, error) {
	if f.after <= 0 {
		return 0, errors.New("disk full")
	}
	f.after--
	return len(p), nil
}

func TestReportWriteError(t *testing.T) {
	r := incidentReport(t, investigate.ReportOptions{})
	if err := r.WriteMarkdown(&failingWriter{after: 3}); err == nil || err.Error() != "disk full" {
		t.Fatalf("WriteMarkdown = %v, want the writer's error", err)
	}
}

func TestHumanDuration(t *testing.T) {
	tests := []struct {
		ns   int64
		want string
	}{
		{0, "0 ns"}, {999, "999 ns"}, {1500, "1.50 µs"}, {35_240, "35.2 µs"}, {812_300_000, "812 ms"},
		{1_250_000_000, "1.25 s"}, {-2_000_000, "-2.00 ms"},
	}
	for _, tt := range tests {
		if got := investigate.HumanDuration(tt.ns); got != tt.want {
			t.Errorf("HumanDuration(%d) = %q, want %q", tt.ns, got, tt.want)
		}
	}
}
