package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	kafkago "github.com/segmentio/kafka-go"
)

// outageGrace is how long failures must go on, with nothing getting through, before they
// are an outage worth a warning: one connection dropped heals within it. Kafka's own
// passing states (a group forming, a partition's leader moving) get transientGrace.
const (
	outageGrace    = 2 * time.Second
	transientGrace = 30 * time.Second
)

// link tracks whether a consumer gets through to Kafka, so that an outage is logged once
// when it begins and once when it ends, not at every retry of every partition (kafka-go
// retries on its own and reports each failure).
type link struct {
	log     *slog.Logger
	brokers []string
	// grace and transientGrace: outageGrace and transientGrace, but for tests.
	grace, transientGrace time.Duration

	mu        sync.Mutex
	failing   bool // failures since the last sign of life
	hard      bool // one of them was not transient
	failSince time.Time
	lastErr   error
	errors    int
	down      bool // the outage was announced
	timer     *time.Timer
}

// fail records trouble reaching Kafka. Failures that last the grace without a sign of life
// in between are announced once: outageGrace, or transientGrace while every failure was
// one of Kafka's passing states.
func (l *link) fail(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.failing {
		l.failing, l.hard, l.failSince, l.errors = true, false, time.Now(), 0
		if !l.down {
			l.timer = time.AfterFunc(l.transientGrace, l.announce)
		}
	}
	l.errors++
	hard := !transient(err)
	if hard || !l.hard { // the error to report: the newest that was not transient, if any
		l.lastErr = err
	}
	if hard && !l.hard {
		l.hard = true
		if !l.down {
			l.timer.Reset(max(l.grace-time.Since(l.failSince), 0))
		}
	}
}

// transient reports whether err is a state Kafka passes through on its own (a group being
// formed or rebalanced, a partition's leadership moving) rather than trouble reaching it.
func transient(err error) bool {
	var kerr kafkago.Error
	if !errors.As(err, &kerr) {
		return false
	}
	switch kerr {
	case kafkago.LeaderNotAvailable, kafkago.NotLeaderForPartition, kafkago.GroupLoadInProgress,
		kafkago.GroupCoordinatorNotAvailable, kafkago.NotCoordinatorForGroup, kafkago.IllegalGeneration,
		kafkago.UnknownMemberId, kafkago.RebalanceInProgress:
		return true
	}
	return false
}

func (l *link) announce() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.failing || l.down {
		return
	}
	l.down = true
	l.log.Warn("kafka unreachable; consuming paused, retrying until it is back", "err", connError(l.brokers, l.lastErr),
		"for", time.Since(l.failSince).Round(time.Millisecond))
}

// ok records a sign of life (a message fetched, offsets committed, the group joined); the
// first after an announced outage is logged.
func (l *link) ok() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.failing {
		return
	}
	l.failing = false
	if l.timer != nil {
		l.timer.Stop()
	}
	if l.down {
		l.down = false
		l.log.Info("kafka reachable again; consuming resumed", "down_for", time.Since(l.failSince).Round(time.Millisecond),
			"errors", l.errors)
	}
}

// close stops a pending announcement.
func (l *link) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.timer != nil {
		l.timer.Stop()
	}
	l.failing = false
}

// Format strings of kafka-go v0.4.51's logging that say something about the link. kafka-go
// offers no hooks for these states, only its printf logging; TestConsumerSurvivesOutage
// fails if an upgrade changes them.
const (
	kgJoined   = "subscribed to topics and partitions: %+v"
	kgSkipping = "the kafka reader is reading before the first offset for partition %d of %s, skipping from offset %d to %d (%d messages)"
	kgPastEnd  = "the kafka reader is reading passed the last offset for partition %d of %s at offset %d"
)

// loggers adapts kafka-go's printf logging: everything goes to debug, errors mark the link
// down, a joined group marks it up, and messages that retention deleted before they were
// read are a warning of their own (they are lost to this group).
func (l *link) loggers(log *slog.Logger) (info, errs kafkago.Logger) {
	debug := log.Enabled(context.Background(), slog.LevelDebug)
	info = kafkago.LoggerFunc(func(format string, args ...any) {
		if format == kgJoined {
			l.ok()
		}
		if debug {
			log.Debug(fmt.Sprintf(format, args...))
		}
	})
	errs = kafkago.LoggerFunc(func(format string, args ...any) {
		msg := strings.TrimSpace(fmt.Sprintf(format, args...))
		if format == kgSkipping {
			log.Warn("messages deleted by retention before they were read: " + msg)
			return
		}
		if debug {
			log.Debug(msg)
		}
		if format == kgPastEnd {
			return // waits for more, as at the end of any partition
		}
		err := loggedError{msg: msg}
		for _, a := range args {
			if e, ok := a.(error); ok {
				err.err = e
				break
			}
		}
		l.fail(err)
	})
	return info, errs
}

// loggedError is an error kafka-go logged: its message, and the error value among its
// arguments (so that transient can see a Kafka error code).
type loggedError struct {
	msg string
	err error
}

func (e loggedError) Error() string { return e.msg }
func (e loggedError) Unwrap() error { return e.err }
