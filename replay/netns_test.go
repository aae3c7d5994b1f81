package replay

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kprobe/kprobe/pipeline/event"
)

// helperEnv carries a replay job to a child process of the test binary (TestMain).
const helperEnv = "KPROBE_REPLAY_NETNS_JOB"

type netnsJob struct {
	Events string   // protobuf batch of the recording
	PID    uint32   // the recorded process
	Bin    string   // the program
	Args   []string // its arguments
}

type netnsResult struct {
	Stdout, Stderr string
	Exit           int
	Served         int64
	Divergence     string
}

// TestReplayNeverReachesTheNetwork replays a recorded TCP client inside a network
// namespace of its own and counts the packets the namespace sends: none, where the same
// program run natively there sends some (to the recorded peer's address).
func TestReplayNeverReachesTheNetwork(t *testing.T) {
	needSandbox(t)
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatal("no ip command (iproute2; make deps installs it)")
	}
	bin, rates, prod, p := recordClient(t, nil, "amount=120\n")
	p.stop()

	ns := fmt.Sprintf("kprobe-replay-%d", os.Getpid())
	ip := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("ip", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	ip("netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	ip("-n", ns, "link", "set", "lo", "up")
	sent := func() int {
		t.Helper()
		n, err := strconv.Atoi(strings.TrimSpace(ip("netns", "exec", ns, "cat", "/sys/class/net/lo/statistics/tx_packets")))
		if err != nil {
			t.Fatal(err)
		}
		return n
	}

	// The same program, run natively in the namespace, does send: the check can fail.
	before := sent()
	exec.Command("ip", append([]string{"netns", "exec", ns, bin}, clientArgs(p, rates)...)...).Run()
	if after := sent(); after == before {
		t.Fatalf("a native run sent nothing either (%d packets): the counter proves nothing", after)
	}

	batch, err := event.MarshalBatch(prod.events)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(dir+"/events.pb", batch, 0o600); err != nil {
		t.Fatal(err)
	}
	job, _ := json.Marshal(netnsJob{Events: dir + "/events.pb", PID: prod.pid, Bin: bin, Args: clientArgs(p, rates)})
	before = sent()
	cmd := exec.Command("ip", "netns", "exec", ns, os.Args[0])
	cmd.Env = append(os.Environ(), helperEnv+"="+string(job))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("replay in the namespace: %v\n%s", err, out)
	}
	if after := sent(); after != before {
		t.Errorf("the replay sent %d packets", after-before)
	}
	var res netnsResult
	i := bytes.Index(out, []byte("RESULT "))
	if i < 0 {
		t.Fatalf("no result from the namespace:\n%s", out)
	}
	if err := json.NewDecoder(bytes.NewReader(out[i+len("RESULT "):])).Decode(&res); err != nil {
		t.Fatal(err)
	}
	if res.Stdout != prod.stdout || res.Stderr != prod.stderr || res.Exit != prod.exit || res.Divergence != "" || res.Served == 0 {
		t.Errorf("replay in the namespace: %+v\nproduction: stdout %q stderr %q exit %d", res, prod.stdout, prod.stderr, prod.exit)
	}
}

func TestMain(m *testing.M) {
	if job := os.Getenv(helperEnv); job != "" {
		// A child of TestReplayNeverReachesTheNetwork, inside the namespace.
		if err := replayJob(job); err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// replayJob is TestReplayNeverReachesTheNetwork's replay, run in a child process inside
// the namespace; it prints its result as one RESULT line.
func replayJob(raw string) error {
	var job netnsJob
	if err := json.Unmarshal([]byte(raw), &job); err != nil {
		return err
	}
	b, err := os.ReadFile(job.Events)
	if err != nil {
		return err
	}
	evs, err := event.UnmarshalBatch(b)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	run, err := Start(ctx, Options{Log: Events(evs), Query: Query{PID: job.PID}},
		Program{Path: job.Bin, Args: job.Args, Stdout: &stdout, Stderr: &stderr})
	if err != nil {
		return err
	}
	for range run.Trace() {
	}
	sum, err := run.Wait()
	if err != nil {
		return err
	}
	res := netnsResult{Stdout: stdout.String(), Stderr: stderr.String(), Exit: sum.ExitCode, Served: sum.Served}
	if sum.Divergence != nil {
		res.Divergence = sum.Divergence.String()
	}
	out, _ := json.Marshal(res)
	fmt.Printf("RESULT %s\n", out)
	return nil
}
