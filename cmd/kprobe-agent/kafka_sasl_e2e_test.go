package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl/scram"

	"github.com/kprobe/kprobe/pipeline/transport/kafka/kafkatest"
)

// TestKafkaSASLEndToEnd: a recorder and an engine through a broker that wants SCRAM-SHA-512
// logins (the engine over TLS as well), passwords from a file and from the environment;
// the event log holds every published event. A wrong password stops either command at
// once, in one line.
func TestKafkaSASLEndToEnd(t *testing.T) {
	needRoot(t)
	k := kafkatest.StartSASL(t)
	_, demo := e2eTools(t)
	prefix, group := e2ePrefix(t, "")
	data := t.TempDir()
	ledger := filepath.Join(t.TempDir(), "ledger")
	port := e2eFreePort(t)
	scramFlags := []string{"--kafka-sasl", "SCRAM-SHA-512", "--kafka-user", k.User}

	// The engine reads the password from the environment, over TLS.
	engArgs := append([]string{agent(t), "engine", "--kafka", k.TLS, "--kafka-ca", k.CAFile, "--data", data,
		"--group", group, "--topic-prefix", prefix, "--otlp-grpc", "127.0.0.1:" + strconv.Itoa(port), "--otlp-http", ""}, scramFlags...)
	t.Setenv("KPROBE_KAFKA_PASSWORD", k.Password)
	eng := e2eStart(t, "engine", engArgs...)
	os.Unsetenv("KPROBE_KAFKA_PASSWORD") // the recorder below takes a file; both is an error
	eng.waitOutput(t, "engine running", 3*time.Minute)

	// The recorder reads it from a file, without TLS.
	recArgs := append([]string{agent(t), "record", "--kafka", k.Plain, "--topic-prefix", prefix, "--kafka-password-file", k.PasswordFile}, scramFlags...)
	rec := e2eStart(t, "record", append(append(recArgs, "--"), e2eDemoArgs(demo, port, 8, ledger)...)...)
	if err := rec.wait(t, 3*time.Minute); err != nil {
		t.Fatalf("record: %v\n%s", err, rec.out.String())
	}
	s := e2eRecordSummary(t, rec.out.String())
	if s.published == 0 || s.written != s.enqueued || s.discarded != 0 {
		t.Fatalf("record through SASL: published %d, kafka enqueued %d written %d discarded %d:\n%s",
			s.published, s.enqueued, s.written, s.discarded, rec.out.String())
	}
	if strings.Contains(rec.out.String(), k.Password) || strings.Contains(eng.out.String(), k.Password) {
		t.Error("a command printed the Kafka password")
	}
	mech, err := scram.Mechanism(scram.SHA512, k.User, k.Password)
	if err != nil {
		t.Fatal(err)
	}
	client := &kafkago.Client{Addr: kafkago.TCP(k.Plain), Timeout: 10 * time.Second, Transport: &kafkago.Transport{SASL: mech}}
	e2eWaitCaughtUpOf(t, client, group, prefix, eng, 3*time.Minute)
	st := e2eStopEngine(t, eng)
	if st.written != s.published {
		t.Errorf("engine wrote %d events, record published %d", st.written, s.published)
	}
	if evs := e2eStored(t, data); uint64(len(evs)) != s.published {
		t.Errorf("event log holds %d events, record published %d", len(evs), s.published)
	}

	// Wrong passwords.
	bad := filepath.Join(t.TempDir(), "bad")
	if err := os.WriteFile(bad, []byte(k.Password+"-not\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, argv := range map[string][]string{
		"record": append([]string{agent(t), "record", "--kafka", k.Plain, "--topic-prefix", prefix, "--kafka-password-file", bad, "--duration", "30s"}, scramFlags...),
		"engine": append([]string{agent(t), "engine", "--kafka", k.Plain, "--data", t.TempDir(), "--group", group + "-bad",
			"--topic-prefix", prefix, "--otlp-grpc", "", "--otlp-http", "", "--kafka-password-file", bad}, scramFlags...),
	} {
		t.Run("wrong password/"+name, func(t *testing.T) {
			p := e2eStart(t, name, argv...)
			if err := p.wait(t, 2*time.Minute); err == nil {
				t.Fatalf("%s ran with a wrong password:\n%s", name, p.out.String())
			}
			var lines []string
			for _, l := range strings.Split(p.out.String(), "\n") {
				if strings.Contains(l, "refused the credentials") {
					lines = append(lines, l)
				}
			}
			if len(lines) != 1 || !strings.HasPrefix(lines[0], "kprobe-agent: ") || !strings.Contains(lines[0], "--kafka-user") {
				t.Errorf("%s: want one line 'kprobe-agent: ... refused the credentials ... --kafka-user ...', got:\n%s", name, p.out.String())
			}
		})
	}
}
