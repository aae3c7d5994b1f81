package cli

import (
	"errors"
	"flag"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestParse: how a command line and its KPROBE_ fallbacks are read, and each mistake's line.
func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		want    string // the values read, or the error
		wantErr bool
	}{
		{"defaults", nil, nil, "wait=2s tls=false", false},
		{"environment", map[string]string{"KPROBE_T_WAIT": "5s", "KPROBE_T_TLS": "true"}, nil, "wait=5s tls=true", false},
		{"flags over the environment", map[string]string{"KPROBE_T_WAIT": "5s"}, []string{"--wait", "1s", "--tls"}, "wait=1s tls=true", false},
		{"bad duration in the environment", map[string]string{"KPROBE_T_WAIT": "2"}, nil, `KPROBE_T_WAIT="2": want a duration such as 2s or 500ms`, true},
		{"bad bool in the environment", map[string]string{"KPROBE_T_TLS": "yes"}, nil, `KPROBE_T_TLS="yes": want true or false`, true},
		{"a flag replaces a bad environment value", map[string]string{"KPROBE_T_WAIT": "2"}, []string{"--wait", "3s"}, "wait=3s tls=false", false},
		{"bad flag", nil, []string{"--wait", "soon"}, `invalid value "soon" for flag -wait: want a duration such as 2s or 500ms (kp test --help lists the flags)`, true},
		{"unknown flag", nil, []string{"--nope"}, "flag provided but not defined: -nope (kp test --help lists the flags)", true},
		{"stray argument", nil, []string{"--tls", "stray"}, `unexpected argument "stray" (kp test takes flags only; kp test --help lists them)`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			setEnv(t, tt.env)
			fs := flag.NewFlagSet("kp test", flag.ContinueOnError)
			var wait time.Duration
			var tls bool
			DurationVar(fs, &wait, "wait", "T_WAIT", 2*time.Second, "how long")
			BoolVar(fs, &tls, "tls", "T_TLS", false, "speak TLS")
			var help strings.Builder
			err := Parse(fs, tt.args, &help)
			got := ""
			if err != nil {
				got = err.Error()
			} else {
				got = "wait=" + wait.String() + " tls=" + map[bool]string{true: "true", false: "false"}[tls]
			}
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want an error: %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if help.Len() > 0 {
				t.Errorf("printed %q on a parse: only -h prints", help.String())
			}
		})
	}
}

// TestHelp: -h prints the usage, with the environment variable of each fallback, on the
// writer given, and is flag.ErrHelp.
func TestHelp(t *testing.T) {
	setEnv(t, nil)
	fs := flag.NewFlagSet("kp test", flag.ContinueOnError)
	var wait time.Duration
	DurationVar(fs, &wait, "wait", "T_WAIT", 2*time.Second, "how long")
	fs.Usage = Usage(fs, "usage: kp test [flags]\n")
	var help strings.Builder
	if err := Parse(fs, []string{"-h"}, &help); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("err = %v, want flag.ErrHelp", err)
	}
	for _, want := range []string{"usage: kp test [flags]", "-wait", "how long (env KPROBE_T_WAIT)", "(default 2s)"} {
		if !strings.Contains(help.String(), want) {
			t.Errorf("help lacks %q:\n%s", want, help.String())
		}
	}
}

// setEnv sets the test's variables as env says, unsetting those it does not name (an
// empty value would be a bad one).
func setEnv(t *testing.T, env map[string]string) {
	t.Helper()
	for _, k := range []string{"KPROBE_T_WAIT", "KPROBE_T_TLS"} {
		t.Setenv(k, env[k]) // restored when the test ends
		if _, ok := env[k]; !ok {
			os.Unsetenv(k)
		}
	}
}
