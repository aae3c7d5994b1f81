package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// agentRun runs the built kprobe-agent with args and env added to a clean KPROBE_
// environment, and returns its stdout, its stderr lines and its exit error.
func agentRun(t *testing.T, args, env []string) (stdout string, stderr []string, err error) {
	t.Helper()
	cmd := exec.Command(agent(t), args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KPROBE_") || strings.HasPrefix(kv, "KPROBE_CACHE=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	return out.String(), strings.Split(strings.TrimRight(errb.String(), "\n"), "\n"), err
}

// TestBadInputIsOneLine: every mistake on kprobe-agent's command line or in its
// environment ends it with a failure status and exactly one line naming it (no usage
// dump, no error printed twice, nothing recorded silently).
func TestBadInputIsOneLine(t *testing.T) {
	noPID := "999999"
	if _, err := os.Stat("/proc/" + noPID); err == nil {
		t.Fatalf("a process %s exists: the test needs a pid that names none", noPID)
	}
	data := t.TempDir()
	tests := []struct {
		args []string
		env  []string
		want string
	}{
		{[]string{"record", "--pid", noPID}, nil, "--pid 999999: no such process"},
		{[]string{"record", "--payload-pid", noPID}, nil, "--payload-pid 999999: no such process"},
		{[]string{"record", "ls"}, nil, `unexpected argument "ls": a command to record goes after -- (kprobe-agent record --help lists the flags)`},
		{[]string{"record", "--pid", "1", "ls"}, nil, `unexpected argument "ls": a command to record goes after -- (kprobe-agent record --help lists the flags)`},
		{[]string{"record", "--bogus"}, nil, "flag provided but not defined: -bogus (kprobe-agent record --help lists the flags)"},
		{[]string{"record", "--duration", "soon"}, nil, `invalid value "soon" for flag -duration: want a duration such as 2s or 500ms (kprobe-agent record --help lists the flags)`},
		{[]string{"record", "--pid", "1"}, []string{"KPROBE_DURATION=10"}, `KPROBE_DURATION="10": want a duration such as 2s or 500ms`},
		{[]string{"standalone", "--data", data, "--output", "x"}, nil, "flag provided but not defined: -output (kprobe-agent standalone --help lists the flags)"},
		{[]string{"standalone", "--data", data, "--format", "jsonl"}, nil, "flag provided but not defined: -format (kprobe-agent standalone --help lists the flags)"},
		{[]string{"standalone", "--data", data, "--kafka", "127.0.0.1:1"}, nil, "flag provided but not defined: -kafka (kprobe-agent standalone --help lists the flags)"},
		{[]string{"standalone", "--data", data, "stray"}, nil, `unexpected argument "stray": a command to record goes after -- (kprobe-agent standalone --help lists the flags)`},
		{[]string{"standalone", "--data", data, "--lateness", "-1s"}, nil, "--lateness -1s: must not be negative"},
		{[]string{"standalone", "--data", data, "--causal-retain", "0s"}, nil, "--causal-retain 0s: must be positive"},
		{[]string{"standalone", "--data", data, "--retention-days", "-1"}, nil, "--retention-days -1: want 0 (keep) or more"},
		{[]string{"standalone", "--data", data}, []string{"KPROBE_LATENESS=2"}, `KPROBE_LATENESS="2": want a duration such as 2s or 500ms`},
		{[]string{"standalone", "--data", data}, []string{"KPROBE_CAUSAL_RETAIN=1 minute"}, `KPROBE_CAUSAL_RETAIN="1 minute": want a duration such as 2s or 500ms`},
		{[]string{"engine", "--kafka", "127.0.0.1:1", "--data", data, "stray"}, nil, `unexpected argument "stray" (kprobe-agent engine takes flags only; kprobe-agent engine --help lists them)`},
		{[]string{"engine", "--bogus"}, nil, "flag provided but not defined: -bogus (kprobe-agent engine --help lists the flags)"},
		{[]string{"engine", "--kafka", "127.0.0.1:1", "--clickhouse", "127.0.0.1:1"}, []string{"KPROBE_CLICKHOUSE_TLS=on"}, `KPROBE_CLICKHOUSE_TLS="on": want true or false`},
		{[]string{"api", "--data", data, "stray"}, nil, `unexpected argument "stray" (kprobe-agent api takes flags only; kprobe-agent api --help lists them)`},
		{[]string{"api", "--bogus"}, nil, "flag provided but not defined: -bogus (kprobe-agent api --help lists the flags)"},
		{[]string{"ssh", "stray"}, nil, `unexpected argument "stray" (kprobe-agent ssh takes flags only; kprobe-agent ssh --help lists them)`},
		{[]string{"ssh", "--bogus"}, nil, "flag provided but not defined: -bogus (kprobe-agent ssh --help lists the flags)"},
		{[]string{"bogus"}, nil, `unknown command "bogus" (kprobe-agent help lists them)`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.env, " ")+" "+strings.Join(tt.args, " "), func(t *testing.T) {
			stdout, stderr, err := agentRun(t, tt.args, tt.env)
			var exit *exec.ExitError
			if !errors.As(err, &exit) {
				t.Fatalf("%v, want a failure exit; stderr:\n%s", err, strings.Join(stderr, "\n"))
			}
			if diff := cmp.Diff([]string{"kprobe-agent: " + tt.want}, stderr); diff != "" {
				t.Errorf("stderr (-want +got):\n%s", diff)
			}
			if stdout != "" {
				t.Errorf("stdout %q, want nothing", stdout)
			}
		})
	}
}

// TestHelpPrintsUsage: -h is not an error: the usage goes to stdout, status 0; standalone
// offers none of the flags of record's output it would ignore.
func TestHelpPrintsUsage(t *testing.T) {
	for _, cmd := range []string{"record", "standalone", "engine", "api", "ssh"} {
		t.Run(cmd, func(t *testing.T) {
			stdout, stderr, err := agentRun(t, []string{cmd, "--help"}, nil)
			if err != nil {
				t.Fatalf("%v\n%s", err, strings.Join(stderr, "\n"))
			}
			if !strings.Contains(stdout, "usage: kprobe-agent "+cmd) && !strings.Contains(stdout, "Usage of kprobe-agent "+cmd) {
				t.Errorf("stdout has no usage of %s:\n%s", cmd, stdout)
			}
			if cmd == "standalone" {
				for _, f := range []string{"-output", "-format", "-kafka", "-topic-prefix"} {
					if strings.Contains(stdout, "\n  "+f+" ") {
						t.Errorf("standalone offers %s, which it would ignore", f)
					}
				}
			}
		})
	}
}

// TestRecordSaysItRecordsEverything: with no selection, record says on stderr that it
// records every process; with one, it does not say so.
func TestRecordSaysItRecordsEverything(t *testing.T) {
	needRoot(t)
	const line = "recording every process on this machine (no --pid, --comm, --cgroup or command given)"
	for _, tt := range []struct {
		args []string
		want bool
	}{
		{[]string{"record", "--duration", "200ms", "--output", os.DevNull}, true},
		{[]string{"record", "--pid", "1", "--duration", "200ms", "--output", os.DevNull}, false},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			_, stderr, err := agentRun(t, tt.args, nil)
			if err != nil {
				t.Fatalf("%v\n%s", err, strings.Join(stderr, "\n"))
			}
			if got := len(stderr) > 0 && stderr[0] == line; got != tt.want {
				t.Errorf("first stderr line is the whole-machine notice: %v, want %v\n%s", got, tt.want, strings.Join(stderr, "\n"))
			}
		})
	}
}
