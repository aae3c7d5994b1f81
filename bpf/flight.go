package bpf

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
)

// The flight recorder keeps, for the processes selected for replay, every syscall that
// brings the outside world in (and what goes out to it): arguments, result, duration and
// the bytes moved, up to PayloadBytes per call. It is its own BPF object (flight.c) on
// its own ring buffer, attached only when asked for, so that the plain recorder's cost
// per syscall stays what it is.

const (
	// MaxFlightPayload is the most the flight recorder keeps of one call: 64 chunks of
	// 16 KiB (FLIGHT_MAX_CHUNKS × FLIGHT_CHUNK in flight.c).
	MaxFlightPayload = 64 * flightChunkSize
	// DefaultFlightPayload keeps whole reads of the protocols replay meets (a TLS record
	// is at most 16 KiB, an HTTP body of a payment a few KiB).
	DefaultFlightPayload = 64 << 10

	flightChunkSize    = 16384
	defaultFlightRing  = 16 << 20
	flightMaxBatch     = 256
	flightFlushEvery   = 100 * time.Millisecond
	flightPathMax      = 4096
	flightMaxIOV       = 16
	flightKindCall     = 1
	flightKindPayload  = 2
	flightKindPath     = 3
	flightCallSize     = 128
	flightChunkHdrSize = 24
)

// FlightOptions configures OpenFlight. At least one selector (PIDs, Comms, cgroups) is
// required: the flight recorder records selected processes only.
type FlightOptions struct {
	Logger       *slog.Logger
	PIDs         []uint32 // and the processes they start
	Comms        []string
	CgroupIDs    []uint64
	CgroupPaths  []string
	PayloadBytes int // kept per call (default DefaultFlightPayload, at most MaxFlightPayload)
	RingBytes    int // default 16 MiB
	QueueLen     int // batches buffered for the consumer (default 64)
}

// FlightCall is one recorded syscall.
type FlightCall struct {
	KtimeNs  uint64 // entry, CLOCK_MONOTONIC
	DurNs    uint64
	PID, TID uint32
	CPU      uint32
	Comm     string
	CgroupID uint64
	Nr       int
	Syscall  string
	Ret      int64 // result, or -errno
	Args     [6]uint64
	Path     string // open, openat, creat
	// Payload is what the call moved (see event.Event for each syscall); Truncated is
	// how many bytes it moved beyond Payload.
	Payload   []byte
	Truncated uint64
}

// flightSyscalls names what flight.c records (flight_cap), by x86_64 number.
var flightSyscalls = map[int]string{
	0: "read", 1: "write", 2: "open", 3: "close", 7: "poll", 17: "pread64", 18: "pwrite64", 19: "readv",
	20: "writev", 23: "select", 32: "dup", 33: "dup2", 35: "nanosleep", 41: "socket", 42: "connect",
	43: "accept", 44: "sendto", 45: "recvfrom", 46: "sendmsg", 47: "recvmsg", 48: "shutdown",
	51: "getsockname", 52: "getpeername", 72: "fcntl", 85: "creat", 230: "clock_nanosleep",
	232: "epoll_wait", 233: "epoll_ctl", 257: "openat", 270: "pselect6", 271: "ppoll", 281: "epoll_pwait",
	288: "accept4", 292: "dup3", 295: "preadv", 296: "pwritev", 318: "getrandom", 436: "close_range",
}

// FlightStats are the flight recorder's counters.
type FlightStats struct {
	Calls          uint64
	LostCalls      uint64 // ring buffer full at a call record
	LostChunks     uint64 // ring buffer full at a payload chunk (those bytes count as truncated)
	Restarted      uint64 // interrupted calls the kernel restarted (the restart is recorded)
	TruncatedBytes uint64 // bytes beyond PayloadBytes, or in lost chunks
	QueueDropped   uint64 // calls dropped because the consumer was too slow
	DecodeErrors   uint64
}

// Flight is the loaded flight recorder.
type Flight struct {
	log     *slog.Logger
	objs    flightObjects
	links   []link.Link
	rd      *ringbuf.Reader
	cfg     flightFlightConfig
	batches chan []FlightCall

	mu     sync.Mutex
	closed bool

	calls, dropped, decodeErrs, lostChunks atomic.Uint64
	closeOnce                              sync.Once
	closeErr                               error
	final                                  [4]uint64
}

// OpenFlight loads and attaches the flight recorder.
func OpenFlight(ctx context.Context, opts FlightOptions) (_ *Flight, err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.PayloadBytes == 0 {
		opts.PayloadBytes = DefaultFlightPayload
	}
	if opts.PayloadBytes < 0 || opts.PayloadBytes > MaxFlightPayload {
		return nil, fmt.Errorf("flight recorder: payload bytes %d: must be between 1 and %d", opts.PayloadBytes, MaxFlightPayload)
	}
	if opts.RingBytes == 0 {
		opts.RingBytes = defaultFlightRing
	}
	if opts.RingBytes < os.Getpagesize() || opts.RingBytes&(opts.RingBytes-1) != 0 {
		return nil, fmt.Errorf("flight recorder: ring buffer size %d: must be a power of two and at least a page", opts.RingBytes)
	}
	if opts.QueueLen <= 0 {
		opts.QueueLen = defaultQueueLen
	}
	cgroups := append([]uint64(nil), opts.CgroupIDs...)
	for _, p := range opts.CgroupPaths {
		id, err := CgroupID(p)
		if err != nil {
			return nil, err
		}
		cgroups = append(cgroups, id)
	}
	if len(opts.PIDs) == 0 && len(opts.Comms) == 0 && len(cgroups) == 0 {
		return nil, errors.New("flight recorder: no process selected (give --pid, --comm, --cgroup or a command)")
	}
	if _, err := CheckFeatures(); err != nil {
		return nil, err
	}
	spec, err := loadFlight()
	if err != nil {
		return nil, fmt.Errorf("flight recorder: parsing its BPF object: %w", err)
	}
	spec.Maps[flightMapFlightEvents].MaxEntries = uint32(opts.RingBytes)
	f := &Flight{log: opts.Logger.With("component", "flight"), batches: make(chan []FlightCall, opts.QueueLen)}
	defer func() {
		if err != nil {
			f.Close()
		}
	}()
	f.cfg = flightFlightConfig{SelfTgid: uint32(os.Getpid()), PayloadBytes: uint32(opts.PayloadBytes)}
	if len(opts.PIDs) > 0 {
		f.cfg.Filters |= filterPID
	}
	if len(opts.Comms) > 0 {
		f.cfg.Filters |= filterComm
	}
	if len(cgroups) > 0 {
		f.cfg.Filters |= filterCgroup
	}
	for _, pid := range opts.PIDs {
		if pid == f.cfg.SelfTgid {
			f.cfg.SelfTgid = 0
		}
	}
	if err := spec.Variables[flightVarFcfg].Set(f.cfg); err != nil {
		return nil, fmt.Errorf("flight recorder: config: %w", err)
	}
	if err := spec.LoadAndAssign(&f.objs, nil); err != nil {
		return nil, loadError(f.log, fmt.Errorf("flight recorder: %w", err))
	}
	one := uint8(1)
	for _, pid := range opts.PIDs {
		if err := f.objs.FlightPids.Put(pid, one); err != nil {
			return nil, fmt.Errorf("flight recorder: selecting pid %d: %w", pid, err)
		}
	}
	for _, c := range opts.Comms {
		if err := f.objs.FlightComms.Put(commKey(c), one); err != nil {
			return nil, fmt.Errorf("flight recorder: selecting comm %q: %w", c, err)
		}
	}
	for _, id := range cgroups {
		if err := f.objs.FlightCgroups.Put(id, one); err != nil {
			return nil, fmt.Errorf("flight recorder: selecting cgroup %d: %w", id, err)
		}
	}
	for _, prog := range []*ebpf.Program{f.objs.FlightFork, f.objs.FlightEnter, f.objs.FlightExit} {
		l, err := link.AttachTracing(link.TracingOptions{Program: prog})
		if err != nil {
			return nil, fmt.Errorf("flight recorder: attaching %s: %w", prog, err)
		}
		f.links = append(f.links, l)
	}
	if f.rd, err = ringbuf.NewReader(f.objs.FlightEvents); err != nil {
		return nil, fmt.Errorf("flight recorder: ring buffer reader: %w", err)
	}
	return f, nil
}

// AddPID selects one more process (a command started under the recorder).
func (f *Flight) AddPID(pid uint32) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return errors.New("flight recorder closed")
	}
	if err := f.objs.FlightPids.Put(pid, uint8(1)); err != nil {
		return fmt.Errorf("flight recorder: selecting pid %d: %w", pid, err)
	}
	cfg := f.cfg
	cfg.Filters |= filterPID
	if pid == cfg.SelfTgid {
		cfg.SelfTgid = 0
	}
	if err := f.objs.Fcfg.Set(cfg); err != nil {
		return fmt.Errorf("flight recorder: config: %w", err)
	}
	f.cfg = cfg
	return nil
}

// Batches delivers recorded calls; it is closed when Run returns.
func (f *Flight) Batches() <-chan []FlightCall { return f.batches }

// Run reads the ring buffer until ctx ends or Close, reassembling calls from their
// chunks and batching them for the consumer. It never blocks the ring buffer: a batch
// the consumer has no room for is dropped and counted.
func (f *Flight) Run(ctx context.Context) error {
	defer close(f.batches)
	stop := context.AfterFunc(ctx, func() { f.rd.Flush() })
	defer stop()
	var (
		rec   ringbuf.Record
		asm   = newAssembler()
		batch []FlightCall
	)
	push := func() {
		if len(batch) == 0 {
			return
		}
		select {
		case f.batches <- batch:
		default:
			f.dropped.Add(uint64(len(batch)))
		}
		batch = nil
	}
	f.rd.SetDeadline(time.Now().Add(flightFlushEvery))
	for {
		err := f.rd.ReadInto(&rec)
		switch {
		case err == nil:
		case errors.Is(err, os.ErrDeadlineExceeded):
			push()
			f.rd.SetDeadline(time.Now().Add(flightFlushEvery))
			continue
		case errors.Is(err, ringbuf.ErrFlushed):
			// Flush (ctx done) returns what is left first, then this.
			push()
			if ctx.Err() != nil {
				return nil
			}
			continue
		case errors.Is(err, ringbuf.ErrClosed):
			push()
			return nil
		default:
			push()
			return fmt.Errorf("flight recorder: reading the ring buffer: %w", err)
		}
		f.take(asm, rec.RawSample, &batch)
		if len(batch) >= flightMaxBatch {
			push()
		}
	}
}

func (f *Flight) take(asm *assembler, raw []byte, batch *[]FlightCall) {
	call, ok, err := asm.add(raw)
	if err != nil {
		f.decodeErrs.Add(1)
		return
	}
	if ok {
		f.calls.Add(1)
		f.lostChunks.Add(uint64(call.lostChunks))
		*batch = append(*batch, call.FlightCall)
	}
}

// Stats reports the counters so far (kernel counters included until Close).
func (f *Flight) Stats() FlightStats {
	k := f.final
	f.mu.Lock()
	if !f.closed {
		k = f.kernelCounters()
	}
	f.mu.Unlock()
	return FlightStats{
		Calls: f.calls.Load(), LostCalls: k[0], LostChunks: k[1] + f.lostChunks.Load(), Restarted: k[2],
		TruncatedBytes: k[3], QueueDropped: f.dropped.Load(), DecodeErrors: f.decodeErrs.Load(),
	}
}

func (f *Flight) kernelCounters() [4]uint64 {
	var out [4]uint64
	if f.objs.FlightCounters == nil {
		return out
	}
	for i := range out {
		var per []uint64
		if f.objs.FlightCounters.Lookup(uint32(i), &per) == nil {
			for _, v := range per {
				out[i] += v
			}
		}
	}
	return out
}

// Close detaches the flight recorder and frees it; safe after a partial open.
func (f *Flight) Close() error {
	f.closeOnce.Do(func() {
		var errs []error
		for _, l := range f.links {
			if err := l.Close(); err != nil {
				errs = append(errs, err)
			}
		}
		if f.rd != nil {
			errs = append(errs, f.rd.Close())
		}
		f.mu.Lock()
		f.final = f.kernelCounters()
		f.closed = true
		f.mu.Unlock()
		errs = append(errs, f.objs.Close())
		f.closeErr = errors.Join(errs...)
	})
	return f.closeErr
}
