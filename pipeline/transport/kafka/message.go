package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"syscall"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/kprobe/kprobe/pipeline/bus"
)

// Message is one Kafka record: the bus message, so that Producer is a bus.Publisher and
// Consumer a bus.Source. Producers set Topic, Key and Value; Offset and Partition are
// filled in by the consumer and identify the record for Commit.
type Message = bus.Message

// ErrClosed is returned by Fetch and Commit after Close; it is a bus.ErrClosed.
var ErrClosed = fmt.Errorf("kafka consumer closed: %w", bus.ErrClosed)

const startHint = "is Kafka running? start it with scripts/kafka/kafka.sh start"

// connError names the brokers and the fix when err means nothing answered at that address.
func connError(brokers []string, err error) error {
	if !isConnectError(err) {
		return err
	}
	return fmt.Errorf("connecting to kafka at %s: %w: %s", strings.Join(brokers, ","), err, startHint)
}

func isConnectError(err error) bool {
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH) ||
		errors.Is(err, syscall.ENETUNREACH) {
		return true
	}
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// retryable reports whether writing again may succeed. Network trouble always may; Kafka
// protocol errors say so themselves; anything else (a message too large, an invalid topic,
// an authorization failure) will fail the same way every time.
func retryable(err error) bool {
	// A refused login is fixed on the broker's side (a user created, a password reset):
	// keep what was recorded and try again.
	if errors.Is(err, kafkago.SASLAuthenticationFailed) {
		return true
	}
	var kerr kafkago.Error
	if errors.As(err, &kerr) {
		return kerr.Temporary()
	}
	var tooLarge kafkago.MessageTooLargeError
	if errors.As(err, &tooLarge) {
		return false
	}
	return true
}

// validTopic checks Kafka's rules for topic names, so one bad name cannot fail a whole batch.
func validTopic(t string) bool {
	if t == "" || len(t) > 249 || t == "." || t == ".." {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// kafkaLogger adapts kafka-go's printf logging to slog. It returns nil when the level is off,
// so kafka-go skips formatting entirely.
func kafkaLogger(log *slog.Logger, level slog.Level) kafkago.Logger {
	if !log.Enabled(context.Background(), level) {
		return nil
	}
	return kafkago.LoggerFunc(func(msg string, args ...any) {
		log.Log(context.Background(), level, fmt.Sprintf(msg, args...))
	})
}

func orDiscard(log *slog.Logger) *slog.Logger {
	if log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return log
}
