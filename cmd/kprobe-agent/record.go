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
	"github.com/kprobe/kprobe/cmd/internal/cli"
	"github.com/kprobe/kprobe/cmd/internal/wire"
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

// selection holds the flag values parseSelection checks once the command line is parsed.
type selection struct{ pids, comms, cgroups, payload listFlag }

// registerSelection adds the flags record and standalone share: which processes, what
// to capture, for how long, and the recorder's buffers.
func registerSelection(fs *flag.FlagSet, c *recordConfig) *selection {
	var s selection
	fs.Var(&s.pids, "pid", "record this process and the processes it starts from now on (repeatable)")
	fs.Var(&s.comms, "comm", "record only processes of this name, as ps and pgrep show it (set from the executable at exec), with all their threads, whatever they call themselves (repeatable)")
	fs.Var(&s.cgroups, "cgroup", "record only processes in this cgroup v2 directory, e.g. /sys/fs/cgroup/app (repeatable)")
	fs.Var(&s.payload, "payload-pid", "capture the first bytes read or received by this process, for replay (repeatable)")
	fs.IntVar(&c.payloadBytes, "payload-bytes", 0, "bytes captured per call: --payload-pid reads (default 256, at most 512); with --flight-recorder, every read and write (default 64 KiB, at most 1 MiB)")
	fs.BoolVar(&c.flight, "flight-recorder", false, "also record, for the selected processes, every syscall replay needs (opens, connects, reads with their bytes, writes, polls, randomness, sleeps): 'kprobe-tui replay' serves them back")
	cli.DurationVar(fs, &c.duration, "duration", "DURATION", 0, "stop after this long (default: until SIGINT/SIGTERM)")
	fs.StringVar(&c.node, "node", env("NODE", ""), "node name stamped on events (default: host name)")
	fs.IntVar(&c.ringMiB, "ring-mib", bpf.DefaultRingBytes>>20, "kernel ring buffer in MiB (a power of two; ~5,400 events per MiB)")
	fs.IntVar(&c.bufferMiB, "buffer-mib", bpf.DefaultBufferBytes>>20, "MiB of events queued when the output falls behind the kernel (~5,000 per MiB, taken only while it lasts); beyond it events are dropped and counted: raise it for longer bursts")
	fs.StringVar(&c.logLevel, "log-level", env("LOG_LEVEL", "warn"), "log level: debug, info, warn, error")
	return &s
}

func parseRecordFlags(fs *flag.FlagSet, args []string, help io.Writer) (recordConfig, error) {
	var c recordConfig
	sel := registerSelection(fs, &c)
	fs.StringVar(&c.output, "output", env("OUTPUT", "-"), "write events to this file ('-' for stdout)")
	fs.StringVar(&c.format, "format", "jsonl", "output format: jsonl")
	fs.StringVar(&c.kafka, "kafka", env("KAFKA_BROKERS", ""), "publish to these Kafka brokers (host:port,...) instead of writing --output")
	fs.StringVar(&c.topicPrefix, "topic-prefix", env("TOPIC_PREFIX", ""), "prefix of the Kafka topic names (kernel.syscall becomes PREFIXkernel.syscall)")
	c.kafkaSec.register(fs)
	if err := parseSelection(fs, args, help, sel, &c); err != nil {
		return c, err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	switch {
	case set["output"] && set["kafka"]:
		return c, fmt.Errorf("give --output or --kafka, not both")
	case set["output"]:
		c.kafka = "" // an explicit --output wins over KPROBE_KAFKA_BROKERS
	}
	if c.format != "jsonl" {
		return c, fmt.Errorf("--format %q: only jsonl is supported", c.format)
	}
	return c, nil
}

// parseSelection parses args and checks the flags registerSelection added; a command to
// record is taken only after "--", so a mistyped flag value is not run as a program.
func parseSelection(fs *flag.FlagSet, args []string, help io.Writer, sel *selection, c *recordConfig) error {
	rest, err := cli.ParseArgs(fs, args, help)
	if err != nil {
		return err
	}
	if n := len(args) - len(rest); len(rest) > 0 && (n == 0 || args[n-1] != "--") {
		return fmt.Errorf("unexpected argument %q: a command to record goes after -- (%s --help lists the flags)", rest[0], fs.Name())
	}
	c.command = rest
	if c.pids, err = parsePIDs("pid", sel.pids); err != nil {
		return err
	}
	if c.payloadPIDs, err = parsePIDs("payload-pid", sel.payload); err != nil {
		return err
	}
	c.comms, c.cgroups = sel.comms, sel.cgroups
	for _, comm := range c.comms {
		if len(comm) > 15 {
			return fmt.Errorf("--comm %q: the kernel keeps only 15 bytes of a command name; use %q", comm, comm[:15])
		}
	}
	if c.duration < 0 {
		return fmt.Errorf("--duration %v: must not be negative", c.duration)
	}
	if c.ringMiB < 1 || c.ringMiB&(c.ringMiB-1) != 0 {
		return fmt.Errorf("--ring-mib %d: must be a power of two", c.ringMiB)
	}
	if c.bufferMiB < 1 {
		return fmt.Errorf("--buffer-mib %d: must be at least 1", c.bufferMiB)
	}
	maxBytes := bpf.MaxPayload
	if c.flight {
		maxBytes = bpf.MaxFlightPayload
	}
	if c.payloadBytes < 0 || c.payloadBytes > maxBytes {
		return fmt.Errorf("--payload-bytes %d: must be between 0 and %d", c.payloadBytes, maxBytes)
	}
	if c.flight && len(c.pids) == 0 && len(c.comms) == 0 && len(c.cgroups) == 0 && len(c.command) == 0 {
		return fmt.Errorf("--flight-recorder records selected processes only: give --pid, --comm, --cgroup or a command after --")
	}
	return nil
}

// sayWhole says on w that the whole machine is recorded when no process is selected:
// that is the default, but rarely what a mistyped selection meant.
func (c recordConfig) sayWhole(w io.Writer) {
	if len(c.pids) == 0 && len(c.comms) == 0 && len(c.cgroups) == 0 && len(c.command) == 0 {
		fmt.Fprintln(w, "recording every process on this machine (no --pid, --comm, --cgroup or command given)")
	}
}

// private makes an existing output file (which keeps its mode through O_TRUNC) the
// owner's only; a device or a pipe (/dev/null, a FIFO) is left as it is.
func private(f *os.File) error {
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() || st.Mode().Perm()&0o077 == 0 {
		return err
	}
	return f.Chmod(0o600)
}

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
	fs := flag.NewFlagSet("kprobe-agent record", flag.ContinueOnError)
	fs.Usage = cli.Usage(fs, "usage: kprobe-agent record [--pid PID]... [--comm NAME]... [--cgroup PATH]... [--duration D] [--output FILE] [--format jsonl] [-- COMMAND ARGS...]\n\nWith a COMMAND, kprobe-agent starts it, records it from its first instruction, and stops when it exits.\nWith no --pid, --comm, --cgroup or COMMAND, it records every process on the machine.\n\n")
	cfg, err := parseRecordFlags(fs, args, stdout)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	cfg.sayWhole(stderr)
	log, err := newLogger(stderr, cfg.logLevel)
	if err != nil {
		return err
	}

	out := stdout
	if cfg.output != "-" {
		// Events name files, peers and commands, and with --payload-pid or
		// --flight-recorder carry the programs' own bytes: the owner's only.
		f, err := os.OpenFile(cfg.output, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err == nil {
			err = private(f)
		}
		if err != nil {
			return fmt.Errorf("opening output: %w", err)
		}
		defer f.Close()
		out = f
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rec, err := openRecorder(ctx, cfg, log, cfg.commandOutput(stderr), stderr)
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
		return recordToKafka(ctx, cfg, log, rec, cancel, stderr)
	}
	childErr := rec.RunCommand(cancel)
	sink := recorder.NewJSONL(out)
	runErr := rec.Run(ctx, sink)
	flushErr := sink.Flush()
	printSummary(stderr, rec.Summary(), cfg)
	if runErr != nil && !errors.Is(runErr, context.Canceled) && !errors.Is(runErr, context.DeadlineExceeded) {
		return runErr
	}
	if err := <-childErr; err != nil {
		return err
	}
	return flushErr
}

// commandOutput is where a recorded command's stdout goes: the terminal's, but stderr
// when events go to stdout, to keep jsonl clean.
func (c recordConfig) commandOutput(stderr io.Writer) io.Writer {
	if c.output == "-" {
		return stderr
	}
	return os.Stdout
}

// openRecorder opens the probes; with a command, it first starts the command held, so
// that its pid is in the filter before it runs, its stdout going to out.
func openRecorder(ctx context.Context, cfg recordConfig, log *slog.Logger, out, stderr io.Writer) (*wire.Recording, error) {
	return wire.OpenRecording(ctx, wire.RecordingOptions{
		Recorder: recorder.Options{Logger: log, Node: cfg.node, BPF: cfg.bpfOptions(), Flight: cfg.flightOptions()},
		Command:  cfg.command, Stdout: out, Stderr: stderr,
	})
}

func printSummary(w io.Writer, s recorder.Summary, cfg recordConfig) {
	var total uint64
	var parts []string
	for _, t := range event.Types() {
		total += s.Events[t]
		parts = append(parts, fmt.Sprintf("%s=%d", t, s.Events[t]))
	}
	fmt.Fprintf(w, "recorded %d events: %s\n", total, strings.Join(parts, " "))
	if total == 0 && s.KernelLost == 0 && len(cfg.command) == 0 {
		// A misspelt name or a pid that had exited looks like a quiet service: say so.
		var sel []string
		for _, c := range cfg.comms {
			sel = append(sel, "--comm "+c)
		}
		for _, p := range cfg.pids {
			sel = append(sel, fmt.Sprintf("--pid %d", p))
		}
		for _, c := range cfg.cgroups {
			sel = append(sel, "--cgroup "+c)
		}
		if len(sel) > 0 {
			fmt.Fprintf(w, "nothing matched %s while recording: check the name (ps -eo pid,comm), the pid, or the cgroup path\n", strings.Join(sel, ", "))
		}
	}
	fmt.Fprintf(w, "lost: kernel=%d (ring buffer full) userspace=%d (queue full) sink_errors=%d\n",
		s.KernelLost, s.QueueDropped, s.SinkErrors)
	if s.Restarted > 0 {
		fmt.Fprintf(w, "restarted: %d reads/writes interrupted by a signal and restarted by the kernel (the restarted attempt is recorded)\n", s.Restarted)
	}
	if f := s.Flight; f != nil {
		fmt.Fprintf(w, "flight recorder: calls=%d lost_calls=%d lost_chunks=%d truncated_bytes=%d restarted=%d queue_dropped=%d\n",
			f.Calls, f.LostCalls, f.LostChunks, f.TruncatedBytes, f.Restarted, f.QueueDropped)
	}
	if s.Skipped > 0 {
		fmt.Fprintf(w, "skipped %d events of the launcher before it started the command\n", s.Skipped)
	}
	att := append([]bpf.Attachment(nil), s.Attachments...)
	sort.Slice(att, func(i, j int) bool { return att[i].Hook < att[j].Hook })
	for _, a := range att {
		fmt.Fprintf(w, "attached %s via %s\n", a.Hook, a.Method)
	}
}

func recordToKafka(ctx context.Context, cfg recordConfig, log *slog.Logger, rec *wire.Recording, cancel context.CancelFunc, stderr io.Writer) error {
	sec, err := cfg.kafkaSec.security()
	if err != nil {
		return err
	}
	prod, stop, err := startProducer(ctx, log, splitBrokers(cfg.kafka), sec, prefixed(cfg.topicPrefix, event.KernelTopics...))
	if err != nil {
		return err
	}
	childErr := rec.RunCommand(cancel)
	pub := recorder.NewPublish(prod, 1024, cfg.topicPrefix)
	runErr := rec.Run(ctx, pub)
	printSummary(stderr, rec.Summary(), cfg)
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
