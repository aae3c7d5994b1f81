package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// settleBatch is settle-svc's input: four settlements, 9103 the one that journals.
const settleBatch = `9101 PAY-1 120.50
9101 PAY-2 80.25
9102 PAY-3 99.99
9103 PAY-4 1200.00
9103 PAY-5 310.10
9103 PAY-6 42.42
9104 PAY-7 7.50
`

// journalWrite is the size of one journal block settle-svc writes for 9103.
const journalWrite = len("9103 journal\n") * ((256 << 10) / len("9103 journal\n"))

// incident is settle-svc recorded by the real agent with its flight recorder.
type incident struct {
	data    string // the embedded event log
	workdir string // where the service ran (its input and ledger are gone now)
	replay  string // the service's command line for a replay: no spans exported
}

// recordSettlements records settle-svc with the real agent (eBPF, flight recorder, OTLP
// spans), then deletes the service's input and ledger: a replay that prints production's
// totals was served them from the recording.
func recordSettlements(t *testing.T) incident {
	t.Helper()
	bin := bins(t)
	svc := filepath.Join(t.TempDir(), "settle-svc")
	// Built without the race detector whatever the test's mode: it is the fixture, not
	// code under test.
	if out, err := exec.Command("go", "build", "-o", svc, "./testdata/settle-svc").CombinedOutput(); err != nil {
		t.Fatalf("building settle-svc: %v\n%s", err, out)
	}
	in := incident{data: t.TempDir(), workdir: t.TempDir()}
	if err := os.WriteFile(filepath.Join(in.workdir, "payments.txt"), []byte(settleBatch), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{svc, "--payments", "payments.txt", "--ledger", "ledger", "--slow", "9103"}
	in.replay = strings.Join(args, " ")
	port := freePort(t)
	rec := exec.Command(filepath.Join(bin, "kprobe-agent"), append([]string{"standalone", "--data", in.data,
		"--flight-recorder", "--otlp-grpc", "127.0.0.1:" + port, "--otlp-http", "", "--",
		args[0], "--otlp", "127.0.0.1:" + port}, args[1:]...)...)
	rec.Dir = in.workdir
	// The agent passes the service's output on to its own stderr.
	var out bytes.Buffer
	rec.Stdout, rec.Stderr = &out, &out
	if err := rec.Run(); err != nil {
		t.Fatalf("recording settle-svc: %v\n%s", err, out.String())
	}
	if s := out.String(); !strings.Contains(s, "settlement 9103: 3 payments, 1552.52 posted") ||
		!strings.Contains(s, "flight recorder: calls=") || !strings.Contains(s, "engine: spans=8 ") {
		t.Fatalf("the recording lacks the service's output, its flight recorder or its 8 spans:\n%s", s)
	}
	for _, f := range []string{"payments.txt", "ledger"} {
		if err := os.Remove(filepath.Join(in.workdir, f)); err != nil {
			t.Fatal(err)
		}
	}
	return in
}

// TestWorkstationOnARecordedIncident is the SRE's whole investigation in a real terminal,
// on an incident the real agent recorded: open the workstation on the event log, type the
// settlement ID, drill from the chain to its kernel events, replay the process on the
// real engine as recorded and then with an injected fsync failure, compare the runs,
// export the report, quit. The report's replay command then runs as written.
func TestWorkstationOnARecordedIncident(t *testing.T) {
	if testing.Short() || os.Geteuid() != 0 {
		t.Skip("needs root (eBPF, ptrace, seccomp user notification) and not -short")
	}
	in := recordSettlements(t)
	bin := bins(t)
	exportDir := t.TempDir()
	exitFile := filepath.Join(exportDir, "exit-status")
	cmd := fmt.Sprintf("%s --data %s --export-dir %s --refresh 0 --replay-program '%s'; echo $? > %s",
		filepath.Join(bin, "kprobe-tui"), in.data, exportDir, in.replay, exitFile)
	tm := newTerminal(t, 120, 40, in.workdir, cmd)

	start := tm.waitFor("slowest settlements (4)", "9103", "9101")
	if strings.Count(start, "settle-svc") != 4 {
		t.Fatalf("the start screen does not list settle-svc's four settlements:\n%s", start)
	}
	tm.keys("9103")
	tm.waitFor("open: 9103")
	tm.keys("Enter")
	chain := tm.waitFor("chain · settlement 9103", "settle-svc pid", "#1 ")
	if !regexp.MustCompile(`#\d+ storage `).MatchString(chain) {
		t.Errorf("the chain names no storage cause for the journalling settlement:\n%s", chain)
	}
	tm.keys("Down", "Enter") // the first cause
	events := tm.waitFor("events · cause #1", "★")
	m := regexp.MustCompile(`(\d+) of (\d+) events`).FindStringSubmatch(events)
	if m == nil || m[1] != m[2] || m[1] == "0" {
		t.Fatalf("the events page does not show all of the settlement's events:\n%s", events)
	}
	tm.keys("/", "type=write", "Enter")
	tm.waitFor("filter type=write", fmt.Sprintf("%d bytes", journalWrite))
	tm.keys("Enter")
	tm.waitFor("event id")
	tm.keys("Escape")
	tm.waitFor("chain · settlement 9103")

	// Run 1, as recorded: the input file is gone, yet the program prints production's
	// totals (served from the recording) and exits 0.
	tm.keys("r")
	tm.replayForm("settle-svc --payments payments.txt", "", "")
	run1 := tm.waitFor("run 1 of 1", "exit 0 after", "settlement 9103: 3 payments, 1552.52 posted")
	if n := served(t, run1); n == 0 {
		t.Errorf("run 1 served nothing from the recording:\n%s", run1)
	}
	// Run 2, with the first fsync failing: the program takes its error path.
	tm.keys("n")
	tm.replayForm("settle-svc --payments payments.txt", "", "fsync EIO")
	run2 := tm.waitFor("run 2 of 2", "syscall=fsync,errno=EIO", "~ tweaked 1", "exit 3 after",
		"settle-svc: settlement 9101: ledger fsync", "~ fsync(")
	if strings.Contains(run2, "posted") {
		t.Errorf("run 2 posted a settlement although its first fsync failed:\n%s", run2)
	}
	tm.keys("c")
	cmp := tm.waitFor("production", "run 1", "run 2")
	if !regexp.MustCompile(`exit\s+ok\s+0\s+3\b`).MatchString(cmp) {
		t.Errorf("the comparison does not show production ok, run 1 exit 0, run 2 exit 3:\n%s", cmp)
	}
	tm.keys("Escape")
	md := tm.exportAndQuit("9103", exportDir, exitFile)
	checkExperiments(t, md)
	// The report's command for run 2 replays it again, with the same outcome.
	var again string
	for _, l := range strings.Split(md, "\n") {
		if strings.HasPrefix(l, "kprobe-tui replay ") && strings.Contains(l, "errno=EIO") {
			again = l
		}
	}
	if again == "" {
		t.Fatalf("the report has no command for run 2:\n%s", md)
	}
	rerun := exec.Command("sh", "-c", filepath.Join(bin, again))
	rerun.Dir = in.workdir
	out, err := rerun.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 || !strings.Contains(string(out), "ledger fsync: sync ledger: input/output error") {
		t.Errorf("%s: %v, want exit 3 and the fsync error:\n%s", again, err, out)
	}
}

// replayForm fills the replay form: the program as proposed (checked to contain
// program), the delay and errno tweaks when given, no timeout change, recorded timing.
// Each field is typed only once it has the focus (keys typed ahead land in the previous
// one).
func (tm *terminal) replayForm(program, delay, errno string) {
	tm.t.Helper()
	tm.waitFor("┃ Program", program)
	tm.keys("Enter")
	tm.waitFor("┃ Delay a syscall")
	if delay != "" {
		tm.keys(delay)
		tm.waitFor("> " + delay)
	}
	tm.keys("Enter")
	tm.waitFor("┃ Inject an error")
	if errno != "" {
		tm.keys(errno)
		tm.waitFor("> " + errno)
	}
	tm.keys("Enter")
	tm.waitFor("┃ Change a timeout")
	tm.keys("Enter")
	tm.waitFor("┃ Timing")
	tm.keys("Enter")
}

// served reads the served count off the replay's status line.
func served(t *testing.T, screen string) int {
	t.Helper()
	m := regexp.MustCompile(`= served (\d+) ·`).FindStringSubmatch(screen)
	if m == nil {
		t.Fatalf("no served count on the screen:\n%s", screen)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// checkExperiments reads the report's replay experiments table: run 1 as recorded exited
// 0 having been served from the recording, run 2 with the fsync errno exited 3.
func checkExperiments(t *testing.T, md string) {
	t.Helper()
	_, section, ok := strings.Cut(md, "## Replay experiments\n")
	if !ok {
		t.Fatalf("the report has no replay experiments:\n%s", md)
	}
	rows := map[string][]string{}
	for _, l := range strings.Split(section, "\n") {
		if !strings.HasPrefix(l, "|") {
			if len(rows) > 0 {
				break
			}
			continue
		}
		var cells []string
		for _, c := range strings.Split(strings.Trim(l, "|"), "|") {
			cells = append(cells, strings.TrimSpace(c))
		}
		rows[cells[0]] = cells
	}
	// run, tweaks, timing, exit, duration, served, native, tweaked, divergent
	r1, r2 := rows["1"], rows["2"]
	if len(r1) != 9 || len(r2) != 9 {
		t.Fatalf("the experiments table lacks runs 1 and 2:\n%s", section)
	}
	if r1[1] != "none (as recorded)" || r1[3] != "0" || r1[5] == "0" || r1[7] != "0" || r1[8] != "0" {
		t.Errorf("run 1 %q: want no tweaks, exit 0, served > 0, nothing tweaked or divergent", r1)
	}
	if r2[1] != "`syscall=fsync,errno=EIO`" || r2[3] != "3" || r2[7] != "1" || r2[8] != "0" {
		t.Errorf("run 2 %q: want the fsync errno, exit 3, 1 tweaked, nothing divergent", r2)
	}
}
