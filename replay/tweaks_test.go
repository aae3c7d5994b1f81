package replay

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// recordClient records the C client once against a live peer.
func recordClient(t *testing.T, env []string, request string) (bin, rates string, prod production, p *peer) {
	t.Helper()
	bin = buildC(t, "client")
	rates = filepath.Join(t.TempDir(), "rates.txt")
	if err := os.WriteFile(rates, []byte("1.25\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p = startPeer(t, request)
	prod = record(t, env, bin, clientArgs(p, rates)...)
	if prod.exit != 0 {
		t.Fatalf("production run: exit %d, stderr %q", prod.exit, prod.stderr)
	}
	return bin, rates, prod, p
}

func clientArgs(p *peer, rates string) []string {
	host, port, _ := strings.Cut(p.addr(), ":")
	return []string{host, port, rates}
}

// TestInjectionMatchesStrace: a failure or result injected by a tweak takes the program
// down the same path as strace's -e inject= with the same selection, on a live run.
func TestInjectionMatchesStrace(t *testing.T) {
	needSandbox(t)
	strace, err := exec.LookPath("strace")
	if err != nil {
		t.Fatal("strace not installed (make deps installs it)")
	}
	bin, rates, prod, p := recordClient(t, nil, "amount=120\n")
	tests := []struct{ tweak, inject string }{
		// read #1 is the dynamic loader's; #2 is the request from the peer.
		{"syscall=read,errno=EIO,nth=2", "read:error=EIO:when=2"},
		{"syscall=read,retval=0,when=2", "read:retval=0:when=2"},
		{"syscall=connect,error=ECONNREFUSED", "connect:error=ECONNREFUSED"},
		{"syscall=write,errno=EPIPE,nth=1", "write:error=EPIPE:when=1"},
		{"syscall=openat,errno=EACCES,nth=3+", "openat:error=EACCES:when=3+"},
	}
	for _, tt := range tests {
		t.Run(tt.tweak, func(t *testing.T) {
			// strace's run is live: it needs the peer.
			cmd := exec.Command(strace, append([]string{"-f", "-qq", "-o", os.DevNull, "-e", "inject=" + tt.inject, bin}, clientArgs(p, rates)...)...)
			var sout, serr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &sout, &serr
			err := cmd.Run()
			var ee *exec.ExitError
			if err != nil && !errors.As(err, &ee) {
				t.Fatal(err)
			}
			want := []any{sout.String(), serr.String(), cmd.ProcessState.ExitCode()}
			if want[2] == 0 {
				t.Fatalf("strace -e inject=%s did not make the client fail: %v", tt.inject, want)
			}
			got := replayRecorded(t, prod, nil, []string{tt.tweak}, StopAtDivergence, bin, clientArgs(p, rates)...)
			if diff := cmp.Diff(want, []any{got.stdout, got.stderr, got.sum.ExitCode}); diff != "" {
				t.Errorf("strace (-) and replay (+) differ:\n%s\ntrace:\n%s", diff, traceSummary(got.trace))
			}
			if got.sum.Tweaked == 0 {
				t.Error("no call was marked tweaked")
			}
		})
	}
}

var took = regexp.MustCompile(`request took (\d+) ms`)

func tookMs(t *testing.T, stdout string) int {
	t.Helper()
	m := took.FindStringSubmatch(stdout)
	if m == nil {
		t.Fatalf("the client did not print its timing: %q", stdout)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// TestTimingShowsInTheProgram: the recorded wait for the peer's request, scaled by
// timing=, and a delay tweak show in what the program itself measured and printed.
func TestTimingShowsInTheProgram(t *testing.T) {
	needSandbox(t)
	env := []string{"CLIENT_TIMING=1"}
	const wait = 400 * time.Millisecond
	bin := buildC(t, "client")
	rates := filepath.Join(t.TempDir(), "rates.txt")
	if err := os.WriteFile(rates, []byte("1.25\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	slow := startSlowPeer(t, wait, "amount=120\n")
	prod := record(t, env, bin, clientArgs(slow, rates)...)
	if got := tookMs(t, prod.stdout); got < int(wait/time.Millisecond) {
		t.Fatalf("production took %d ms, want at least the peer's %v", got, wait)
	}
	slow.stop()
	tests := []struct {
		tweaks  []string
		atLeast time.Duration
	}{
		{nil, wait}, // timing=recorded is the default
		{[]string{"timing=x2"}, 2 * wait},
		{[]string{"timing=fast", "syscall=connect,delay=700ms"}, 700 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.tweaks, " "), func(t *testing.T) {
			got := replayRecorded(t, prod, env, tt.tweaks, StopAtDivergence, bin, clientArgs(slow, rates)...)
			if got.sum.ExitCode != 0 || got.sum.Divergence != nil {
				t.Fatalf("replay: %+v\nstderr %q", got.sum, got.stderr)
			}
			if ms := tookMs(t, got.stdout); ms < int(tt.atLeast/time.Millisecond)-1 { // the program prints whole ms
				t.Errorf("the client measured %d ms, want at least %v", ms, tt.atLeast)
			}
		})
	}
}

// TestChangedProgramDiverges: a build that sends the peer other bytes is stopped at that
// very write, with the line the command prints; --on-divergence native lets it go on.
func TestChangedProgramDiverges(t *testing.T) {
	needSandbox(t)
	_, rates, prod, p := recordClient(t, nil, "amount=120\n")
	changed := buildC(t, "client", "-DCHANGED")
	p.stop()

	got := replayRecorded(t, prod, nil, nil, StopAtDivergence, changed, clientArgs(p, rates)...)
	d := got.sum.Divergence
	if d == nil {
		t.Fatalf("no divergence; stdout %q stderr %q", got.stdout, got.stderr)
	}
	var at *Record
	for i := range got.trace {
		if got.trace[i].Kind == Divergent {
			at = &got.trace[i]
		}
	}
	if at == nil || at.Seq != d.Seq || at.Syscall != "write" || at.TID != d.TID {
		t.Fatalf("divergence %+v, trace record %+v: want the write of the result", d, at)
	}
	line := regexp.MustCompile(`^divergence at syscall #\d+ \(tid \d+\): recorded write\(3 \[socket 127\.0\.0\.1:\d+\], "result=150\.00\\n"\) = 14, program write\(3, "result=150\.000\\n", 15\)$`)
	if !line.MatchString(d.String()) {
		t.Errorf("divergence line %q", d.String())
	}
	if !got.sum.Stopped || got.sum.Signal != "SIGKILL" || got.stdout != "" {
		t.Errorf("with stop: summary %+v, stdout %q: want the program killed before it printed", got.sum, got.stdout)
	}

	got = replayRecorded(t, prod, nil, nil, ContinueNatively, changed, clientArgs(p, rates)...)
	if got.sum.Divergence == nil || got.sum.Stopped {
		t.Errorf("with native: summary %+v, want the divergence noted and the program left running", got.sum)
	}
}
