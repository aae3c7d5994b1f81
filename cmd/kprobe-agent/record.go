package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/kprobe/kprobe/bpf"
	"github.com/kprobe/kprobe/pipeline/event"
	"github.com/kprobe/kprobe/pipeline/recorder"
)

type recordConfig struct {
	pids         []uint32
	comms        []string
	cgroups      []string
	payloadPIDs  []uint32
	payloadBytes int
	flight       bool // --flight-recorder
	duration     time.Duration
	output       string
	format       string
	node         string
	logLevel     string
	kafka        string // brokers; publish instead of writing jsonl
	kafkaSec     kafkaSecFlags
	topicPrefix  string
	ringMiB      int      // kernel ring buffer
	bufferMiB    int      // raw events queued behind the ring reader
	command      []string // run and record this command (after --)
}

func parseRecordFlags(fs *flag.FlagSet, args []string) (recordConfig, error) {
	var c recordConfig
	var pids, comms, cgroups, payload listFlag
	fs.Var(&pids, "pid", "record only this process id (repeatable)")
	fs.Var(&comms, "comm", "record only processes of this name, as ps and pgrep show it (set from the executable at exec), with all their threads, whatever they call themselves (repeatable)")
	fs.Var(&cgroups, "cgroup", "record only processes in this cgroup v2 directory, e.g. /sys/fs/cgroup/app (repeatable)")
	fs.Var(&payload, "payload-pid", "capture the first bytes read or received by this process, for replay (repeatable)")
	fs.IntVar(&c.payloadBytes, "payload-bytes", 0, "bytes captured per call: --payload-pid reads (default 256, at most 512); with --flight-recorder, every read and write (default 64 KiB, at most 1 MiB)")
	fs.BoolVar(&c.flight, "flight-recorder", false, "also record, for the selected processes, every syscall replay needs (opens, connects, reads with their bytes, writes, polls, randomness, sleeps): 'kprobe-tui replay' serves them back")
	fs.DurationVar(&c.duration, "duration", envDuration("DURATION", 0), "stop after this long (default: until SIGINT/SIGTERM)")
	fs.StringVar(&c.output, "output", env("OUTPUT", "-"), "write events to this file ('-' for stdout)")
	fs.StringVar(&c.format, "format", "jsonl", "output format: jsonl")
	fs.StringVar(&c.node, "node", env("NODE", ""), "node name stamped on events (default: host name)")
	fs.StringVar(&c.kafka, "kafka", env("KAFKA_BROKERS", ""), "publish to these Kafka brokers (host:port,...) instead of writing --output")
	fs.StringVar(&c.topicPrefix, "topic-prefix", env("TOPIC_PREFIX", ""), "prefix of the Kafka topic names (kernel.syscall becomes PREFIXkernel.syscall)")
	fs.IntVar(&c.ringMiB, "ring-mib", bpf.DefaultRingBytes>>20, "kernel ring buffer in MiB (a power of two; ~5,400 events per MiB)")
	fs.IntVar(&c.bufferMiB, "buffer-mib", bpf.DefaultBufferBytes>>20, "MiB of events queued when the output falls behind the kernel (~5,000 per MiB, taken only while it lasts); beyond it events are dropped and counted: raise it for longer bursts")
	c.kafkaSec.register(fs)
	fs.StringVar(&c.logLevel, "log-level", env("LOG_LEVEL", "warn"), "log level: debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	c.command = fs.Args()
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	switch {
	case set["output"] && set["kafka"]:
		return c, fmt.Errorf("give --output or --kafka, not both")
	case set["output"]:
		c.kafka = "" // an explicit --output wins over KPROBE_KAFKA_BROKERS
	}
	var err error
	if c.pids, err = parsePIDs(pids); err != nil {
		return c, err
	}
	if c.payloadPIDs, err = parsePIDs(payload); err != nil {
		return c, err
	}
	c.comms, c.cgroups = comms, cgroups
	for _, comm := range c.comms {
		if len(comm) > 15 {
			return c, fmt.Errorf("--comm %q: the kernel keeps only 15 bytes of a command name; use %q", comm, comm[:15])
		}
	}
	if c.format != "jsonl" {
		return c, fmt.Errorf("--format %q: only jsonl is supported", c.format)
	}
	if c.duration < 0 {
		return c, fmt.Errorf("--duration %v: must not be negative", c.duration)
	}
	if c.ringMiB < 1 || c.ringMiB&(c.ringMiB-1) != 0 {
		return c, fmt.Errorf("--ring-mib %d: must be a power of two", c.ringMiB)
	}
	if c.bufferMiB < 1 {
		return c, fmt.Errorf("--buffer-mib %d: must be at least 1", c.bufferMiB)
	}
	maxBytes := bpf.MaxPayload
	if c.flight {
		maxBytes = bpf.MaxFlightPayload
	}
	if c.payloadBytes < 0 || c.payloadBytes > maxBytes {
		return c, fmt.Errorf("--payload-bytes %d: must be between 0 and %d", c.payloadBytes, maxBytes)
	}
	if c.flight && len(c.pids) == 0 && len(c.comms) == 0 && len(c.cgroups) == 0 && len(c.command) == 0 {
		return c, fmt.Errorf("--flight-recorder records selected processes only: give --pid, --comm, --cgroup or a command after --")
	}
	return c, nil
}

// payloadCaptured says whether recorded bytes of the programs end up in the output:
// then nobody but the owner may read it.
func (c recordConfig) payloadCaptured() bool { return c.flight || len(c.payloadPIDs) > 0 }

func (c recordConfig) bpfOptions() bpf.Options {
	plain := c.payloadBytes
	if plain == 0 {
		plain = 256
	}
	return bpf.Options{
		PIDs: c.pids, Comms: c.comms, CgroupPaths: c.cgroups,
		PayloadPIDs: c.payloadPIDs, PayloadBytes: min(plain, bpf.MaxPayload),
		RingBytes: c.ringMiB << 20, BufferBytes: c.bufferMiB << 20,
	}
}

// flightOptions selects the same processes as the plain recorder (a command is added by
// openRecorder).
func (c recordConfig) flightOptions() *bpf.FlightOptions {
	if !c.flight {
		return nil
	}
	return &bpf.FlightOptions{PIDs: c.pids, Comms: c.comms, CgroupPaths: c.cgroups, PayloadBytes: c.payloadBytes}
}

func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}

func runRecord(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("record", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: kprobe-agent record [--pid PID]... [--comm NAME]... [--cgroup PATH]... [--duration D] [--output FILE] [--format jsonl] [-- COMMAND ARGS...]\n\nWith a COMMAND, kprobe-agent starts it, records it from its first instruction, and stops when it exits.\n\n")
		fs.PrintDefaults()
	}
	cfg, err := parseRecordFlags(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	log, err := newLogger(stderr, cfg.logLevel)
	if err != nil {
		return err
	}

	out := stdout
	if cfg.output != "-" {
		perm := os.FileMode(0o644)
		if cfg.payloadCaptured() {
			perm = 0o600 // the programs' own bytes: not world-readable
		}
		f, err := os.OpenFile(cfg.output, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
		if err == nil && cfg.payloadCaptured() {
			err = f.Chmod(perm) // an existing file keeps its mode otherwise
		}
		if err != nil {
			return fmt.Errorf("opening output: %w", err)
		}
		defer f.Close()
		out = f
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rec, child, err := openRecorder(ctx, cfg, log, stderr)
	if err != nil {
		return err
	}
	defer rec.Close()
	if cfg.duration > 0 {
		// --duration counts from the moment the probes are attached: loading
		// them takes seconds on a busy node.
		timer := time.AfterFunc(cfg.duration, cancel)
		defer timer.Stop()
	}
	if cfg.kafka != "" {
		return recordToKafka(ctx, cfg, log, rec, child, cancel, stderr)
	}
	childErr := runChild(child, cancel)
	sink := recorder.NewJSONL(out)
	runErr := rec.Run(ctx, sink)
	flushErr := sink.Flush()
	printSummary(stderr, rec.Summary())
	if runErr != nil && !errors.Is(runErr, context.Canceled) && !errors.Is(runErr, context.DeadlineExceeded) {
		return runErr
	}
	if err := <-childErr; err != nil {
		return err
	}
	return flushErr
}

// openRecorder opens the probes; with a command, it first starts the command held, so
// that its pid is in the filter before it runs.
func openRecorder(ctx context.Context, cfg recordConfig, log *slog.Logger, stderr io.Writer) (*recorder.Recorder, *launched, error) {
	var child *launched
	opts := cfg.bpfOptions()
	if len(cfg.command) > 0 {
		var err error
		// The command's own stdout stays the terminal's; events may go to stdout too, so
		// with --output - the command's output goes to stderr to keep jsonl clean.
		out := io.Writer(os.Stdout)
		if cfg.output == "-" {
			out = stderr
		}
		if child, err = launch(ctx, cfg.command, out, stderr); err != nil {
			return nil, nil, err
		}
		opts.PIDs = append(opts.PIDs, child.pid())
	}
	ropts := recorder.Options{Logger: log, Node: cfg.node, BPF: opts, Flight: cfg.flightOptions()}
	if ropts.Flight != nil && child != nil {
		ropts.Flight.PIDs = append(ropts.Flight.PIDs, child.pid())
	}
	if child != nil {
		ropts.LauncherPID, ropts.LauncherComm = child.pid(), launcherComm()
	}
	rec, err := recorder.Open(ctx, ropts)
	if err != nil {
		if child != nil {
			child.release.Close() // the held child exits without running the command
			child.cmd.Wait()
		}
		return nil, nil, err
	}
	return rec, child, nil
}

// runChild releases the held command and ends the recording shortly after it exits.
func runChild(child *launched, cancel context.CancelFunc) <-chan error {
	errc := make(chan error, 1)
	if child == nil {
		errc <- nil
		return errc
	}
	if err := child.start(); err != nil {
		errc <- err
		cancel()
		return errc
	}
	go func() {
		err := child.cmd.Wait()
		// Let the last events reach the ring buffer reader before stopping.
		time.Sleep(200 * time.Millisecond)
		cancel()
		if err != nil {
			err = fmt.Errorf("recorded command: %w", err)
		}
		errc <- err
	}()
	return errc
}

func printSummary(w io.Writer, s recorder.Summary) {
	var total uint64
	var parts []string
	for _, t := range event.Types() {
		total += s.Events[t]
		parts = append(parts, fmt.Sprintf("%s=%d", t, s.Events[t]))
	}
	fmt.Fprintf(w, "recorded %d events: %s\n", total, strings.Join(parts, " "))
	fmt.Fprintf(w, "lost: kernel=%d (ring buffer full) userspace=%d (queue full) sink_errors=%d\n",
		s.KernelLost, s.QueueDropped, s.SinkErrors)
	if s.Restarted > 0 {
		fmt.Fprintf(w, "restarted: %d reads/writes interrupted by a signal and restarted by the kernel (the restarted attempt is recorded)\n", s.Restarted)
	}
	if f := s.Flight; f != nil {
		fmt.Fprintf(w, "flight recorder: calls=%d lost_calls=%d lost_chunks=%d truncated_bytes=%d restarted=%d queue_dropped=%d\n",
			f.Calls, f.LostCalls, f.LostChunks, f.TruncatedBytes, f.Restarted, f.QueueDropped)
	}
	if s.Launcher > 0 {
		fmt.Fprintf(w, "skipped %d events of the launcher before it started the command\n", s.Launcher)
	}
	att := append([]bpf.Attachment(nil), s.Attachments...)
	sort.Slice(att, func(i, j int) bool { return att[i].Hook < att[j].Hook })
	for _, a := range att {
		fmt.Fprintf(w, "attached %s via %s\n", a.Hook, a.Method)
	}
}

func recordToKafka(ctx context.Context, cfg recordConfig, log *slog.Logger, rec *recorder.Recorder, child *launched, cancel context.CancelFunc, stderr io.Writer) error {
	sec, err := cfg.kafkaSec.security()
	if err != nil {
		return err
	}
	prod, stop, err := startProducer(ctx, log, splitBrokers(cfg.kafka), sec, prefixed(cfg.topicPrefix, event.KernelTopics...))
	if err != nil {
		return err
	}
	childErr := runChild(child, cancel)
	pub := recorder.NewPublish(prod, 1024, cfg.topicPrefix)
	runErr := rec.Run(ctx, pub)
	printSummary(stderr, rec.Summary())
	sent, dropped := pub.Stats()
	fmt.Fprintf(stderr, "published: events=%d dropped=%d\n", sent, dropped)
	stopErr := stop(stderr)
	if runErr != nil && !errors.Is(runErr, context.Canceled) && !errors.Is(runErr, context.DeadlineExceeded) {
		return runErr
	}
	if err := <-childErr; err != nil {
		return err
	}
	return stopErr
}
