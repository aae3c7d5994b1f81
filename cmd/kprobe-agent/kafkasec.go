package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/kprobe/kprobe/cmd/internal/cli"
	"github.com/kprobe/kprobe/pipeline/transport/kafka"
)

// kafkaSecFlags are the flags of a secured Kafka, shared by record and engine. The password
// comes from a file or the environment, never from argv (which every user can read).
type kafkaSecFlags struct {
	tls                 bool
	ca, cert, key, name string
	sasl, user, pwFile  string
}

func (k *kafkaSecFlags) register(fs *flag.FlagSet) {
	cli.BoolVar(fs, &k.tls, "kafka-tls", "KAFKA_TLS", false, "speak TLS to Kafka (implied by --kafka-ca and --kafka-cert)")
	fs.StringVar(&k.ca, "kafka-ca", env("KAFKA_CA", ""), "CA certificate (PEM) of the brokers' certificates (default: the system's roots)")
	fs.StringVar(&k.cert, "kafka-cert", env("KAFKA_CERT", ""), "client certificate (PEM) for brokers that ask for one")
	fs.StringVar(&k.key, "kafka-key", env("KAFKA_KEY", ""), "key of --kafka-cert")
	fs.StringVar(&k.name, "kafka-server-name", "", "name to check in the brokers' certificates (default: the broker's host)")
	fs.StringVar(&k.sasl, "kafka-sasl", env("KAFKA_SASL", ""), "SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (PLAIN only over TLS in production)")
	fs.StringVar(&k.user, "kafka-user", env("KAFKA_USER", ""), "SASL user")
	fs.StringVar(&k.pwFile, "kafka-password-file", env("KAFKA_PASSWORD_FILE", ""), "file holding the SASL password (or set KPROBE_KAFKA_PASSWORD)")
}

func (k *kafkaSecFlags) security() (kafka.Security, error) {
	var s kafka.Security
	if k.tls || k.ca != "" || k.cert != "" {
		cfg, err := kafka.TLSFiles(k.ca, k.cert, k.key, k.name)
		if err != nil {
			return s, err
		}
		s.TLS = cfg
	}
	s.SASL, s.Username = k.sasl, k.user
	pw, inEnv := os.LookupEnv("KPROBE_KAFKA_PASSWORD")
	switch {
	case inEnv && k.pwFile != "":
		return s, errors.New("give the Kafka password in KPROBE_KAFKA_PASSWORD or --kafka-password-file, not both")
	case k.pwFile != "":
		b, err := os.ReadFile(k.pwFile)
		if err != nil {
			return s, fmt.Errorf("--kafka-password-file: %w", err)
		}
		// One line; a trailing newline from `echo` is not part of the password.
		pw = strings.TrimRight(string(b), "\r\n")
	}
	s.Password = pw
	if s.SASL != "" && s.Password == "" {
		return s, fmt.Errorf("--kafka-sasl %s needs a password: --kafka-password-file FILE or KPROBE_KAFKA_PASSWORD", s.SASL)
	}
	return s, nil
}
