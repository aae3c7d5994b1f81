package replay

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

type programCase struct {
	name  string
	build func(t *testing.T) string
	args  func(peer, rates string) []string
}

var programs = []programCase{
	{"c", func(t *testing.T) string { return buildC(t, "client") }, func(peer, rates string) []string {
		host, port, _ := strings.Cut(peer, ":")
		return []string{host, port, rates}
	}},
	{"go", func(t *testing.T) string { return buildGo(t, "testdata/goclient") }, func(peer, rates string) []string {
		return []string{peer, rates}
	}},
}

// TestReplayMatchesProduction records each program with the real flight recorder, then
// replays it with the peer gone and the rate file changed: it prints, fails and exits
// exactly as in production, and what it sends is compared, not sent.
func TestReplayMatchesProduction(t *testing.T) {
	needSandbox(t)
	for _, pc := range programs {
		t.Run(pc.name, func(t *testing.T) {
			bin := pc.build(t)
			rates := filepath.Join(t.TempDir(), "rates.txt")
			if err := os.WriteFile(rates, []byte("1.25\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			p := startPeer(t, "amount=120\n")
			prod := record(t, nil, bin, pc.args(p.addr(), rates)...)
			if prod.exit != 0 || !strings.Contains(prod.stdout, "result=150.00") {
				t.Fatalf("production run: exit %d, stdout %q, stderr %q", prod.exit, prod.stdout, prod.stderr)
			}
			p.stop()
			if err := os.WriteFile(rates, []byte("9.99\n"), 0o644); err != nil {
				t.Fatal(err)
			}

			got := replayIt2(t, prod, nil, nil, StopAtDivergence, bin, pc.args(p.addr(), rates)...)
			want := result{stdout: prod.stdout, stderr: prod.stderr, sum: Summary{ExitCode: prod.exit}}
			if diff := cmp.Diff([]any{want.stdout, want.stderr, want.sum.ExitCode}, []any{got.stdout, got.stderr, got.sum.ExitCode}); diff != "" {
				t.Errorf("replay differs from production (-want +got):\n%s\ntrace:\n%s", diff, traceSummary(got.trace))
			}
			if got.sum.Divergence != nil {
				t.Errorf("divergence: %s", got.sum.Divergence)
			}
			if got.sum.Served == 0 {
				t.Error("nothing was served")
			}
		})
	}
}

func replayIt2(t *testing.T, prod production, env, tweaks []string, policy Policy, bin string, args ...string) result {
	t.Helper()
	return replayRecorded(t, prod, env, tweaks, policy, bin, args...)
}
