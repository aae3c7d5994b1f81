package kafka

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"

	"github.com/kprobe/kprobe/pipeline/certs"
)

// SASL mechanisms kprobe speaks.
const (
	SASLPlain       = "PLAIN"
	SASLScramSHA256 = "SCRAM-SHA-256"
	SASLScramSHA512 = "SCRAM-SHA-512"
)

// Security is how kprobe reaches a secured Kafka: TLS for the connection, SASL for who it
// is. The zero value is plaintext without authentication.
type Security struct {
	// TLS encrypts every connection (and verifies the brokers) when set.
	TLS *tls.Config
	// SASL is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; "" for none. PLAIN sends the password
	// as is: use it only over TLS.
	SASL     string
	Username string
	Password string
}

// ErrAuth is wrapped by errors that mean Kafka refused who we said we were (or the TLS
// handshake failed): retrying will not help until the configuration changes.
var ErrAuth = errors.New("kafka refused the credentials")

func (s Security) mechanism() (sasl.Mechanism, error) {
	switch strings.ToUpper(s.SASL) {
	case "":
		if s.Username != "" || s.Password != "" {
			return nil, errors.New("kafka: a user or password without a SASL mechanism: give --kafka-sasl PLAIN or SCRAM-SHA-512")
		}
		return nil, nil
	case SASLPlain:
		if s.Username == "" {
			return nil, errors.New("kafka: SASL PLAIN needs a user")
		}
		return plain.Mechanism{Username: s.Username, Password: s.Password}, nil
	case SASLScramSHA256, SASLScramSHA512:
		if s.Username == "" {
			return nil, fmt.Errorf("kafka: SASL %s needs a user", s.SASL)
		}
		algo := scram.SHA512
		if strings.ToUpper(s.SASL) == SASLScramSHA256 {
			algo = scram.SHA256
		}
		m, err := scram.Mechanism(algo, s.Username, s.Password)
		if err != nil {
			return nil, fmt.Errorf("kafka: SASL %s: %w", s.SASL, err)
		}
		return m, nil
	}
	return nil, fmt.Errorf("kafka: unknown SASL mechanism %q (want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)", s.SASL)
}

// transport is a kafka-go transport that speaks s.
func (s Security) transport(dialTimeout time.Duration) (*kafkago.Transport, error) {
	m, err := s.mechanism()
	if err != nil {
		return nil, err
	}
	return &kafkago.Transport{DialTimeout: dialTimeout, ClientID: "kprobe", TLS: s.TLS, SASL: m}, nil
}

// dialer is a kafka-go dialer (the consumer's) that speaks s.
func (s Security) dialer(timeout time.Duration) (*kafkago.Dialer, error) {
	m, err := s.mechanism()
	if err != nil {
		return nil, err
	}
	return &kafkago.Dialer{Timeout: timeout, DualStack: true, ClientID: "kprobe", TLS: s.TLS, SASLMechanism: m}, nil
}

// login opens one connection with TLS and SASL as configured, so that a refused login is
// reported as such: kafka-go's pooled client reports it as "Broker Not Available".
func (s Security) login(ctx context.Context, brokers []string) error {
	if s.TLS == nil && s.SASL == "" {
		return nil
	}
	d, err := s.dialer(10 * time.Second)
	if err != nil {
		return err
	}
	for _, b := range brokers {
		var c *kafkago.Conn
		if c, err = d.DialContext(ctx, "tcp", b); err == nil {
			c.Close()
			return nil
		}
		if err = authError(s.Username, err); errors.Is(err, ErrAuth) {
			return err
		}
	}
	return err
}

// TLSFiles builds the TLS configuration of a Kafka client from PEM files: the CA that signed
// the brokers' certificates ("" for the system's roots) and an optional client certificate.
func TLSFiles(caFile, certFile, keyFile, serverName string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName}
	if caFile != "" {
		pool, err := certs.Pool("--kafka-ca", caFile)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	cert, err := certs.KeyPair("--kafka-cert/--kafka-key", certFile, keyFile)
	if err != nil {
		return nil, err
	}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return cfg, nil
}

// authError marks err as ErrAuth when it means the broker refused our credentials or the
// TLS handshake failed, naming what to check.
func authError(user string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, kafkago.SASLAuthenticationFailed) || errors.Is(err, kafkago.IllegalSASLState) ||
		errors.Is(err, kafkago.UnsupportedSASLMechanism) {
		return fmt.Errorf("%w (user %q): check --kafka-sasl, --kafka-user and the password: %v", ErrAuth, user, err)
	}
	var cert *tls.CertificateVerificationError
	var rec tls.RecordHeaderError
	if errors.As(err, &cert) || errors.As(err, &rec) {
		return fmt.Errorf("%w: TLS with the brokers failed (check --kafka-tls and --kafka-ca): %v", ErrAuth, err)
	}
	return err
}
