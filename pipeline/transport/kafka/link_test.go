package kafka

import (
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
)

// TestLinkLogsOutagesOnce drives the link's state machine: a failure that heals within
// its grace is not an outage; one that lasts is announced once however many failures
// follow, and its end once; Kafka's passing states get the longer grace.
func TestLinkLogsOutagesOnce(t *testing.T) {
	refused := errors.New("dial tcp 127.0.0.1:9: connect: connection refused")
	rebalancing := loggedError{msg: "Failed to join group g: [27] Rebalance In Progress", err: kafkago.RebalanceInProgress}
	tests := []struct {
		name     string
		errs     []error
		minDelay time.Duration // the announcement comes no earlier
	}{
		{"hard failures", []error{refused, refused, refused}, 20 * time.Millisecond},
		{"transient, then hard", []error{rebalancing, refused}, 20 * time.Millisecond},
		{"transient only", []error{rebalancing, fmt.Errorf("committing offsets: %w", kafkago.IllegalGeneration)}, 200 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log, logs := capturingLogger(t, slog.LevelInfo)
			l := &link{log: log, brokers: []string{"127.0.0.1:9"}, grace: 20 * time.Millisecond, transientGrace: 200 * time.Millisecond}
			defer l.close()

			// Healed within the grace: nothing to say.
			l.fail(tt.errs[0])
			l.ok()
			// Lasting: announced once, however many failures follow.
			start := time.Now()
			for _, err := range tt.errs {
				l.fail(err)
			}
			waitFor(t, 10*time.Second, "the outage announced", func() bool { return logs.count(logDown) > 0 })
			if d := time.Since(start); d < tt.minDelay {
				t.Errorf("announced after %v, want no sooner than %v", d, tt.minDelay)
			}
			for _, err := range tt.errs {
				l.fail(err)
			}
			l.ok()
			l.ok()
			if down, back := logs.count(logDown), logs.count(logBack); down != 1 || back != 1 {
				t.Errorf("logged the outage %d times and its end %d times, want once each:\n%s", down, back, logs.String())
			}
			if want := tt.errs[len(tt.errs)-1].Error(); logs.count(want) != 1 {
				t.Errorf("the announcement does not name the last error %q:\n%s", want, logs.String())
			}
		})
	}
}
