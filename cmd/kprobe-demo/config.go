package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Incidents the demo can inject into one settlement.
const (
	incidentNone           = "none"
	incidentSlowStorage    = "slow-storage"
	incidentCPUHog         = "cpu-hog"
	incidentMemoryPressure = "memory-pressure"
	incidentSlowPeer       = "slow-peer"
	incidentLock           = "lock-contention"
)

var incidents = []string{incidentNone, incidentSlowStorage, incidentCPUHog, incidentMemoryPressure, incidentSlowPeer, incidentLock}

type config struct {
	otlp               string // OTLP gRPC endpoint, "" for no export
	ledger             string // "" for a temporary file
	settlements        int
	payments           int     // per settlement
	rate               float64 // settlements per second, 0 for as fast as possible
	incident           string
	incidentSettlement int
	incidentDuration   time.Duration
	firstSettlement    int
	firstPayment       int
	windowSettlements  int // settlements per clearing window
	startSignal        bool
}

func parseConfig(args []string, getenv func(string) string) (config, error) {
	var c config
	fs := newFlagSet(&c, getenv)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return config{}, err
		}
		return config{}, fmt.Errorf("%w (kprobe-demo --help lists the flags)", err)
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments %q (kprobe-demo takes flags only)", fs.Args())
	}
	return c, c.validate()
}

// usage is what --help prints.
func usage(getenv func(string) string) string {
	var b strings.Builder
	fs := newFlagSet(&config{}, getenv)
	fs.SetOutput(&b)
	b.WriteString("usage: kprobe-demo [flags]\n\nA payment service that settles payments, traced with OpenTelemetry, for kprobe to record.\n\n")
	fs.PrintDefaults()
	return b.String()
}

func newFlagSet(c *config, getenv func(string) string) *flag.FlagSet {
	defaultOTLP := getenv("OTEL_EXPORTER_OTLP_ENDPOINT")
	if defaultOTLP == "" {
		defaultOTLP = "127.0.0.1:4317"
	}
	fs := flag.NewFlagSet("kprobe-demo", flag.ContinueOnError)
	// Parse errors are returned, once, as one line: not printed here with the whole usage.
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.otlp, "otlp", defaultOTLP, `OTLP gRPC endpoint (host:port or URL; "" disables export; default $OTEL_EXPORTER_OTLP_ENDPOINT)`)
	fs.StringVar(&c.ledger, "ledger", "", "ledger file to append to (default: a temporary file, removed at exit)")
	fs.IntVar(&c.settlements, "settlements", 5, "settlements to process before exiting")
	fs.IntVar(&c.payments, "payments-per-settlement", 4, "payments in each settlement")
	fs.Float64Var(&c.rate, "rate", 0, "settlements per second (0: as fast as possible)")
	fs.StringVar(&c.incident, "incident", incidentNone, "incident to inject: "+strings.Join(incidents, ", "))
	fs.IntVar(&c.incidentSettlement, "incident-settlement", 4821, "the settlement the incident hits")
	fs.DurationVar(&c.incidentDuration, "incident-duration", 250*time.Millisecond, "how long the incident lasts at least")
	fs.IntVar(&c.firstSettlement, "first-settlement", 4819, "ID of the first settlement")
	fs.IntVar(&c.firstPayment, "first-payment", 98713, "number of the first payment (payments are PAY-<n>)")
	fs.IntVar(&c.windowSettlements, "window-settlements", 8, "settlements per clearing window")
	fs.BoolVar(&c.startSignal, "start-signal", false, `print "ready pid=N" and wait for a newline on stdin before working, so a recorder can attach first`)
	return fs
}

func (c config) validate() error {
	var errs []error
	if c.settlements < 1 {
		errs = append(errs, errors.New("--settlements must be at least 1"))
	}
	if c.payments < 1 {
		errs = append(errs, errors.New("--payments-per-settlement must be at least 1"))
	}
	if c.rate < 0 {
		errs = append(errs, errors.New("--rate must not be negative"))
	}
	if !slices.Contains(incidents, c.incident) {
		errs = append(errs, fmt.Errorf("--incident %q: want one of %v", c.incident, incidents))
	}
	if c.incident != incidentNone && (c.incidentSettlement < c.firstSettlement || c.incidentSettlement >= c.firstSettlement+c.settlements) {
		errs = append(errs, fmt.Errorf("--incident-settlement %d is not among settlements %d..%d",
			c.incidentSettlement, c.firstSettlement, c.firstSettlement+c.settlements-1))
	}
	if c.windowSettlements < 1 {
		errs = append(errs, errors.New("--window-settlements must be at least 1"))
	}
	if c.incidentDuration <= 0 {
		errs = append(errs, errors.New("--incident-duration must be positive"))
	}
	return errors.Join(errs...)
}
