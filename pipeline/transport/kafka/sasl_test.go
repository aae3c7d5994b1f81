package kafka

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kprobe/kprobe/pipeline/transport/kafka/kafkatest"
)

// saslBroker is the SASL broker of scripts/kafka/kafka.sh, as this package's tests use it.
func saslBroker(tb testing.TB) saslKafka {
	tb.Helper()
	k := kafkatest.StartSASL(tb)
	return saslKafka{Plain: []string{k.Plain}, TLS: []string{k.TLS}, User: k.User, Password: k.Password, CAFile: k.CAFile}
}

type saslKafka struct {
	Plain, TLS     []string
	User, Password string
	CAFile         string
}

// TestSASLRoundTrip: a producer and a consumer group through the SASL listener, with each
// mechanism the broker offers.
func TestSASLRoundTrip(t *testing.T) {
	k := saslBroker(t)
	tlsCfg, err := TLSFiles(k.CAFile, "", "", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		brokers []string
		sec     Security
	}{
		{"SCRAM-SHA-512", k.Plain, Security{SASL: SASLScramSHA512, Username: k.User, Password: k.Password}},
		{"PLAIN", k.Plain, Security{SASL: SASLPlain, Username: k.User, Password: k.Password}},
		{"TLS+SCRAM-SHA-512", k.TLS, Security{TLS: tlsCfg, SASL: SASLScramSHA512, Username: k.User, Password: k.Password}},
		{"TLS+PLAIN", k.TLS, Security{TLS: tlsCfg, SASL: SASLPlain, Username: k.User, Password: k.Password}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sec, brokers, mech := tc.sec, tc.brokers, strings.ReplaceAll(tc.name, "+", "-")
			topic := fmt.Sprintf("test.sasl.%s.%d", strings.ToLower(mech), time.Now().UnixNano())
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			if err := EnsureTopicsWith(ctx, brokers, sec, []string{topic}, 2); err != nil {
				t.Fatal(err)
			}
			p, err := NewProducer(ProducerOptions{Logger: testLogger(t), Brokers: brokers, Security: sec})
			if err != nil {
				t.Fatal(err)
			}
			runCtx, stop := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- p.Run(runCtx) }()
			const n = 50
			for i := range n {
				if !p.Publish(Message{Topic: topic, Key: []byte{byte(i)}, Value: []byte(fmt.Sprint(i))}) {
					t.Fatalf("publish %d refused", i)
				}
			}
			waitFor(t, 30*time.Second, "messages written", func() bool { return p.Stats().Written == n })
			if err := p.Close(ctx); err != nil {
				t.Fatal(err)
			}
			stop()
			<-done

			c, err := NewConsumer(ConsumerOptions{Logger: testLogger(t), Brokers: brokers, Security: sec,
				GroupID: topic + ".group", Topics: []string{topic}})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			seen := map[string]bool{}
			for len(seen) < n {
				m, err := c.Fetch(ctx)
				if err != nil {
					t.Fatalf("after %d messages: %v", len(seen), err)
				}
				seen[string(m.Value)] = true
			}
		})
	}
}

// TestSASLWrongPassword: a refused login is one line naming the user and what to check,
// and it wraps ErrAuth so the commands stop at once instead of buffering forever.
func TestSASLWrongPassword(t *testing.T) {
	k := saslBroker(t)
	user, pw, brokers := k.User, k.Password, k.Plain
	for _, mech := range []string{SASLScramSHA512, SASLPlain} {
		t.Run(mech, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			sec := Security{SASL: mech, Username: user, Password: pw + "-wrong"}
			err := EnsureTopicsWith(ctx, brokers, sec, []string{"test.sasl.never"}, 1)
			if !errors.Is(err, ErrAuth) {
				t.Fatalf("wrong password: %v, want ErrAuth", err)
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") || !strings.Contains(msg, `"`+user+`"`) || !strings.Contains(msg, "--kafka-user") {
				t.Errorf("error %q: want one line naming the user and the flags to check", msg)
			}
			if strings.Contains(msg, pw) {
				t.Errorf("the error shows the password")
			}
		})
	}
}

// TestTLSUnknownCA: a broker whose certificate the client cannot verify is refused, with
// the flags to check.
func TestTLSUnknownCA(t *testing.T) {
	k := saslBroker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sec := Security{TLS: &tls.Config{MinVersion: tls.VersionTLS12}, SASL: SASLScramSHA512, Username: k.User, Password: k.Password}
	err := EnsureTopicsWith(ctx, k.TLS, sec, []string{"test.sasl.never"}, 1)
	if !errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), "--kafka-ca") {
		t.Fatalf("unknown CA: %v, want ErrAuth naming --kafka-ca", err)
	}
	if _, err := TLSFiles(filepath.Join(t.TempDir(), "none.pem"), "", "", ""); err == nil {
		t.Error("TLSFiles accepted a missing CA file")
	}
	if _, err := TLSFiles("", k.CAFile, "", ""); err == nil {
		t.Error("TLSFiles accepted a certificate without its key")
	}
}

func TestSecurityChecks(t *testing.T) {
	for name, s := range map[string]Security{
		"unknown mechanism":      {SASL: "GSSAPI", Username: "u"},
		"scram without user":     {SASL: SASLScramSHA512},
		"plain without user":     {SASL: SASLPlain, Password: "p"},
		"user without mechanism": {Username: "u", Password: "p"},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := NewProducer(ProducerOptions{Brokers: []string{"x:1"}, Security: s}); err == nil {
				t.Error("producer accepted it")
			}
			if _, err := NewConsumer(ConsumerOptions{Brokers: []string{"x:1"}, GroupID: "g", Topics: []string{"t"}, Security: s}); err == nil {
				t.Error("consumer accepted it")
			}
		})
	}
}
