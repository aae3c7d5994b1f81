package replay

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestSmallerReadsTakePieces: a program that reads in smaller pieces than production did
// gets production's bytes in those pieces.
func TestSmallerReadsTakePieces(t *testing.T) {
	needSandbox(t)
	path := filepath.Join(t.TempDir(), "in")
	os.WriteFile(path, []byte("local!"), 0o644)
	var s script
	s.open(path, 3)
	s.call(testPID, "read", 3, 10, []byte("0123456789"), 3, 0, 4096)
	s.call(testPID, "read", 3, 0, nil, 3, 0, 4096)
	got := replayIt(t, s.evs, nil, StopAtDivergence, "dd", "if="+path, "bs=4", "status=none")
	if got.stdout != "0123456789" || got.sum.Divergence != nil {
		t.Errorf("dd bs=4 printed %q (%+v), want production's bytes in 4-byte reads", got.stdout, got.sum)
	}
	var reads int
	for _, r := range got.trace {
		if r.Syscall == "read" && r.Kind == Served {
			reads++
		}
	}
	if reads != 4 { // 4 + 4 + 2, then end of file
		t.Errorf("%d reads served, want 4", reads)
	}
}

// TestTruncatedReadDiverges: bytes the recorder could not keep are not made up: the read
// that needs them is the divergence, and says why.
func TestTruncatedReadDiverges(t *testing.T) {
	needSandbox(t)
	path := filepath.Join(t.TempDir(), "in")
	os.WriteFile(path, []byte("local"), 0o644)
	var s script
	s.open(path, 3)
	e := s.call(testPID, "read", 3, 100, []byte("0123456789"), 3, 0, 131072)
	e.Truncated = 90
	got := replayIt(t, s.evs, nil, StopAtDivergence, "cat", path)
	d := got.sum.Divergence
	if d == nil || !strings.Contains(d.Recorded, "truncated") || !strings.Contains(d.Recorded, "--payload-bytes") {
		t.Fatalf("divergence %v, want one naming the truncated read and the flag that keeps more", d)
	}
	if got.stdout != "0123456789" {
		t.Errorf("cat printed %q before the divergence, want the 10 bytes kept", got.stdout)
	}
}

// TestSignalsNeverServeTwice: a read interrupted by a signal over and over (its
// notification withdrawn, the kernel restarting it) is served its record once.
func TestSignalsNeverServeTwice(t *testing.T) {
	needSandbox(t)
	bin := buildC(t, "sigread")
	path := filepath.Join(t.TempDir(), "in")
	os.WriteFile(path, []byte("local"), 0o644)
	var s script
	s.open(path, 3)
	first := s.call(testPID, "read", 3, 6, []byte("alpha "), 3, 0, 64)
	first.DurNs = uint64(150 * time.Millisecond) // production waited: the replay holds it, signals keep coming
	s.call(testPID, "read", 3, 4, []byte("beta"), 3, 0, 64)
	s.call(testPID, "read", 3, 0, nil, 3, 0, 64)
	got := replayIt(t, s.evs, nil, StopAtDivergence, bin, path)
	if want := "alpha beta\n2 reads, last 0, interrupted many times\n"; got.stdout != want || got.sum.Divergence != nil {
		t.Errorf("printed %q (%+v), want %q", got.stdout, got.sum, want)
	}
}

// TestRandomServed: the random bytes production got are the program's again.
func TestRandomServed(t *testing.T) {
	needSandbox(t)
	bin := buildC(t, "random")
	prod := record(t, nil, bin)
	again := record(t, nil, bin)
	if again.stdout == prod.stdout {
		t.Fatalf("two live runs printed the same random bytes %q: the test proves nothing", prod.stdout)
	}
	got := replayRecorded(t, prod, nil, nil, StopAtDivergence, bin)
	if got.stdout != prod.stdout {
		t.Errorf("replay printed %q, want production's %q", got.stdout, prod.stdout)
	}
}

// TestAcceptServed: a server replayed with no client gets production's connection: the
// peer address, the request, and its answer compared but not sent.
func TestAcceptServed(t *testing.T) {
	needSandbox(t)
	bin := buildC(t, "server")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	answered := make(chan string, 1)
	go func() {
		for i := 0; i < 200; i++ { // until the recorded server listens
			c, err := net.Dial("tcp", "127.0.0.1:"+port)
			if err != nil {
				time.Sleep(20 * time.Millisecond)
				continue
			}
			c.Write([]byte("PAY-98721\n"))
			line, _ := bufio.NewReader(c).ReadString('\n')
			c.Close()
			answered <- line
			return
		}
		answered <- "never connected"
	}()
	prod := record(t, nil, bin, port)
	if got := <-answered; got != "echo PAY-98721\n" || prod.exit != 0 {
		t.Fatalf("production: client got %q, server exit %d stderr %q", got, prod.exit, prod.stderr)
	}
	got := replayRecorded(t, prod, nil, nil, StopAtDivergence, bin, port)
	if got.stdout != prod.stdout || got.sum.ExitCode != 0 || got.sum.Divergence != nil {
		t.Errorf("replay printed %q (%+v), want production's %q\n%s", got.stdout, got.sum, prod.stdout, traceSummary(got.trace))
	}
}

// TestRelativePathServed: production opened "in.txt" from its directory; the replay runs
// elsewhere and passes the file by another path to the same name: it is still served.
func TestRelativePathServed(t *testing.T) {
	needSandbox(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "in.txt")
	os.WriteFile(path, []byte("local"), 0o644)
	var s script
	s.open("in.txt", 3)
	s.call(testPID, "read", 3, 6, []byte("prod!\n"), 3, 0, 131072)
	s.call(testPID, "read", 3, 0, nil, 3, 0, 131072)
	got := replayIt(t, s.evs, nil, StopAtDivergence, "cat", path)
	if got.stdout != "prod!\n" {
		t.Errorf("cat %s printed %q, want the recorded bytes of in.txt", path, got.stdout)
	}
}

// TestReadsLeftToTheKernelGetTheRecord: a read whose recorded bytes sit in the file's
// placeholder where the program's read would look is left to the kernel; every other
// read (the position moved by a seek the replay never saw, a range production read
// twice with other bytes) is written from the recording. Each gets its own record.
func TestReadsLeftToTheKernelGetTheRecord(t *testing.T) {
	needSandbox(t)
	bin := buildC(t, "placed")
	path := filepath.Join(t.TempDir(), "in")
	os.WriteFile(path, []byte("local bytes!"), 0o644)
	var s script
	s.open(path, 3)
	s.call(testPID, "read", 3, 4, []byte("AAAA"), 3, 0, 4)
	s.call(testPID, "read", 3, 4, []byte("BBBB"), 3, 0, 4)
	// Production seeked back and the file had changed: placed after BBBB, read at 0.
	s.call(testPID, "read", 3, 4, []byte("CCCC"), 3, 0, 4)
	// Two positioned reads of the start, with other bytes each time: the placeholder
	// keeps the last, so only the last may be left to the kernel.
	s.call(testPID, "pread64", 3, 4, []byte("PPPP"), 3, 0, 4, 0)
	s.call(testPID, "pread64", 3, 4, []byte("QQQQ"), 3, 0, 4, 0)
	got := replayIt(t, s.evs, nil, StopAtDivergence, bin, path)
	if want := "AAAA BBBB CCCC PPPP QQQQ \n"; got.stdout != want || got.sum.Divergence != nil {
		t.Errorf("printed %q (%+v), want %q", got.stdout, got.sum, want)
	}
	var results []int64
	for _, r := range got.trace {
		if (r.Syscall == "read" || r.Syscall == "pread64") && r.Kind == Served {
			results = append(results, r.Result)
		}
	}
	if diff := cmp.Diff([]int64{4, 4, 4, 4, 4}, results); diff != "" {
		t.Errorf("served reads' results (-want +got):\n%s", diff)
	}
}
