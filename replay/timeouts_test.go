package replay

import (
	"strings"
	"testing"
	"time"
)

// TestTimeoutTweaks: a changed timeout plays against what production waited. Production
// here waited 300 ms for its peer; the replay, served from that recording with the peer
// gone, says what a shorter or longer timeout would have done.
func TestTimeoutTweaks(t *testing.T) {
	needSandbox(t)
	bin := buildC(t, "timeouts")
	const late = 300 * time.Millisecond
	record1 := func(t *testing.T, args ...string) (production, []string) {
		t.Helper()
		p := startSlowPeer(t, late, "amount=120\n")
		host, port, _ := strings.Cut(p.addr(), ":")
		args = append([]string{args[0], host, port}, args[1:]...)
		prod := record(t, nil, bin, args...)
		p.stop()
		return prod, args
	}
	tests := []struct {
		name          string
		mode, ms      string
		prodStdout    string
		tweak         string
		want          string
		wantTweakNote string
	}{
		{"poll shorter", "poll", "1000", "ready: amount=120\n", "syscall=poll,timeout=50ms", // 3 × 50 ms < 300 ms
			"timed out\ntimed out\ntimed out\n", "before production's readiness"},
		{"poll longer", "poll", "120", "timed out\ntimed out\nready: amount=120\n", "syscall=poll,timeout=x10",
			"ready: amount=120\n", "where production timed out first"},
		{"SO_RCVTIMEO shorter", "rcvtimeo", "1000", "ready: amount=120\n", "syscall=setsockopt,timeout=x0.1",
			"timed out\n", "SO_RCVTIMEO"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prod, args := record1(t, tt.mode, tt.ms)
			if prod.stdout != tt.prodStdout {
				t.Fatalf("production printed %q, want %q (a slow peer of %v)", prod.stdout, tt.prodStdout, late)
			}
			same := replayRecorded(t, prod, nil, nil, StopAtDivergence, bin, args...)
			if same.stdout != prod.stdout || same.sum.Divergence != nil {
				t.Fatalf("untweaked replay printed %q (%+v), want production's %q", same.stdout, same.sum, prod.stdout)
			}
			got := replayRecorded(t, prod, nil, []string{tt.tweak}, StopAtDivergence, bin, args...)
			if got.stdout != tt.want {
				t.Errorf("with %s the program printed %q, want %q\ntrace:\n%s", tt.tweak, got.stdout, tt.want, traceSummary(got.trace))
			}
			if !strings.Contains(traceSummary(got.trace), tt.wantTweakNote) {
				t.Errorf("the trace does not say what the tweak did (%q):\n%s", tt.wantTweakNote, traceSummary(got.trace))
			}
		})
	}
}

// TestNativeTimeoutEdit: a poll on the program's own pipe runs natively; the tweak edits
// its timeout register in a ptrace stop, so the kernel times it out sooner.
func TestNativeTimeoutEdit(t *testing.T) {
	needSandbox(t)
	bin := buildC(t, "timeouts")
	prod := record(t, nil, bin, "pipe", "1500")
	if prod.stdout != "ready: late\n" {
		t.Fatalf("production printed %q", prod.stdout)
	}
	got := replayRecorded(t, prod, nil, []string{"syscall=poll,timeout=x0.1"}, StopAtDivergence, bin, "pipe", "1500")
	if got.stdout != "timed out\n" {
		t.Errorf("with the timeout a tenth, the program printed %q, want a timeout\ntrace:\n%s", got.stdout, traceSummary(got.trace))
	}
	if !strings.Contains(traceSummary(got.trace), "timeout 1.5s → 150ms") {
		t.Errorf("no record of the edit:\n%s", traceSummary(got.trace))
	}
	same := replayRecorded(t, prod, nil, nil, StopAtDivergence, bin, "pipe", "1500")
	if same.stdout != prod.stdout {
		t.Errorf("untweaked, the program printed %q, want %q", same.stdout, prod.stdout)
	}
}
