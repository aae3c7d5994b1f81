// Package kafkatest starts the secured test broker of scripts/kafka/kafka.sh for the tests
// of the packages and commands that speak to a secured Kafka.
package kafkatest

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// SASL is the SASL broker (KPROBE_KAFKA_SASL=1): SCRAM-SHA-512 and PLAIN without TLS on
// Plain, with TLS on TLS (its certificate signed by the CA in CAFile).
type SASL struct {
	Plain, TLS     string
	User, Password string
	// PasswordFile holds Password, as --kafka-password-file wants it.
	PasswordFile string
	CAFile       string
}

// StartSASL starts (or finds) the SASL broker and returns it with the client user's
// credentials, which the script generated and keeps beside the broker's state. It skips
// where the plaintext test broker's tests skip: in -short, or without KPROBE_KAFKA_BROKERS.
func StartSASL(tb testing.TB) SASL {
	tb.Helper()
	if testing.Short() {
		tb.Skip("needs Kafka; skipped in -short")
	}
	if os.Getenv("KPROBE_KAFKA_BROKERS") == "" {
		tb.Skip("KPROBE_KAFKA_BROKERS is not set: start Kafka with scripts/kafka/kafka.sh start and set KPROBE_KAFKA_BROKERS=127.0.0.1:19092 (make test does both)")
	}
	root, err := repoRoot()
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(root, "scripts", "kafka", "kafka.sh"), "start")
	cmd.Env = append(os.Environ(), "KPROBE_KAFKA_SASL=1", "KPROBE_KAFKA_HEAP=256m")
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			tb.Fatalf("starting the SASL broker: %v\n%s", err, ee.Stderr)
		}
		tb.Fatalf("starting the SASL broker: %v", err)
	}
	state := os.Getenv("KPROBE_STATE")
	if state == "" {
		state = "/tmp/kprobe-services"
	}
	dir := filepath.Join(state, "kafka-sasl")
	pw, err := os.ReadFile(filepath.Join(dir, "sasl.password"))
	if err != nil {
		tb.Fatalf("the SASL broker's password: %v", err)
	}
	addr := strings.TrimSpace(string(out))
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		tb.Fatalf("the SASL broker's address %q: %v", addr, err)
	}
	p, _ := strconv.Atoi(port)
	return SASL{Plain: addr, TLS: net.JoinHostPort(host, strconv.Itoa(p+2)),
		User: "kprobe", Password: strings.TrimSpace(string(pw)), PasswordFile: filepath.Join(dir, "sasl.password"),
		CAFile: filepath.Join(dir, "tls", "ca.pem")}
}

// repoRoot is the directory of go.mod above the working directory.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}
