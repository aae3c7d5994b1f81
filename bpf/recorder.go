package bpf

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"
)

// Options configures Open. Active filters (PIDs, Comms, cgroups) must all
// match for an event to be recorded; with none set everything is recorded.
// The recorder's own process is excluded unless its pid is in PIDs.
type Options struct {
	Logger       *slog.Logger
	PIDs         []uint32 // record only these tgids (empty = no pid filter)
	Comms        []string // record only these comms (truncated to 15 bytes, as the kernel does)
	CgroupIDs    []uint64 // record only these cgroup v2 ids
	CgroupPaths  []string // cgroup v2 directories, resolved to ids by Open
	PayloadPIDs  []uint32 // capture read payload for these tgids
	PayloadBytes int      // bytes captured per read, ≤ MaxPayload (default MaxPayload)
	RingBytes    int      // ring buffer size: power of two multiple of the page size (default 8 MiB)
	QueueLen     int      // batches buffered between Run and the consumer (default 64)
}

const (
	defaultRingBytes = 8 << 20
	defaultQueueLen  = 64
	maxBatch         = 1024
	flushInterval    = 100 * time.Millisecond // latency bound when the kernel skips wakeups
	clockInterval    = 10 * time.Second
)

// Filter bits of struct config in kprobe.c.
const (
	filterPID     = 1
	filterComm    = 2
	filterCgroup  = 4
	filterPayload = 8
)

// Stats are the recorder's counters. Every event the kernel produced is
// either in Received (decoded) or KernelLost (ring buffer full at reserve);
// QueueDropped counts the received events then dropped because the consumer
// of Batches was too slow; DecodeErrors counts malformed samples.
type Stats struct {
	Received            map[EventType]uint64
	ReceivedTotal       uint64
	KernelLost          uint64
	KernelLostByType    map[EventType]uint64
	QueueDropped        uint64 // events in batches dropped because the queue was full
	QueueDroppedBatches uint64
	DecodeErrors        uint64
	// Restarted counts read/write attempts that a signal interrupted and the kernel
	// restarted (ERESTART* results, which no program ever sees): the restarted attempt
	// is the one recorded, as the program saw it.
	Restarted uint64
}

// Recorder owns the loaded probes, their links and the ring-buffer reader.
type Recorder struct {
	log         *slog.Logger
	coll        *ebpf.Collection
	links       []link.Link
	rd          *ringbuf.Reader
	cfgVar      *ebpf.Variable
	attachments []Attachment
	clock       *Clock
	stopClock   context.CancelFunc
	batches     chan []Event
	free        chan []Event // batches handed back by Release, for Run to reuse

	mu      sync.Mutex // guards cfg and the run/close state
	cfg     bpfConfig
	started bool
	closed  bool

	closeOnce sync.Once
	closeErr  error

	finalLost map[EventType]uint64 // kernel counters captured by Close

	received     [numEventTypes]atomic.Uint64
	queueDropped atomic.Uint64
	droppedBatch atomic.Uint64
	decodeErrors atomic.Uint64
	restarted    atomic.Uint64
}

// Open checks kernel features, loads and attaches the probes and opens the
// ring-buffer reader. On error everything acquired so far is released.
func Open(ctx context.Context, opts Options) (*Recorder, error) {
	return open(ctx, opts, kernelProber{})
}

func open(ctx context.Context, opts Options, p prober) (_ *Recorder, err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	log := opts.Logger.With("component", "bpf")

	if _, err := CheckFeatures(); err != nil {
		return nil, err
	}
	cgroupIDs := append([]uint64(nil), opts.CgroupIDs...)
	for _, path := range opts.CgroupPaths {
		id, err := CgroupID(path)
		if err != nil {
			return nil, err
		}
		cgroupIDs = append(cgroupIDs, id)
	}

	spec, err := loadBpf()
	if err != nil {
		return nil, fmt.Errorf("parsing BPF objects: %w", err)
	}
	plans := planHooks(p)
	pruneSpec(spec, plans)
	spec.Maps["events"].MaxEntries = uint32(opts.RingBytes)

	r := &Recorder{
		log:     log,
		clock:   NewClock(),
		batches: make(chan []Event, opts.QueueLen),
		free:    make(chan []Event, opts.QueueLen+2),
	}
	defer func() {
		if err != nil {
			r.Close()
		}
	}()

	r.cfg = bpfConfig{
		SelfTgid:     uint32(os.Getpid()),
		PayloadBytes: uint32(opts.PayloadBytes),
		WakeupBytes:  wakeupBytes(opts.RingBytes),
	}
	for _, pid := range opts.PIDs {
		if pid == r.cfg.SelfTgid {
			r.cfg.SelfTgid = 0
		}
	}
	if len(opts.PIDs) > 0 {
		r.cfg.Filters |= filterPID
	}
	if len(opts.Comms) > 0 {
		r.cfg.Filters |= filterComm
	}
	if len(cgroupIDs) > 0 {
		r.cfg.Filters |= filterCgroup
	}
	if len(opts.PayloadPIDs) > 0 {
		r.cfg.Filters |= filterPayload
	}
	// Set before load so the filters hold from the first event.
	if err := spec.Variables["cfg"].Set(r.cfg); err != nil {
		return nil, fmt.Errorf("setting BPF config: %w", err)
	}

	r.coll, err = ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{})
	if err != nil {
		return nil, loadError(log, err)
	}
	r.cfgVar = r.coll.Variables["cfg"]

	one := uint8(1)
	for _, pid := range opts.PIDs {
		if err := r.coll.Maps["filter_pids"].Put(pid, one); err != nil {
			return nil, fmt.Errorf("adding pid %d to filter: %w", pid, err)
		}
	}
	for _, c := range opts.Comms {
		if err := r.coll.Maps["filter_comms"].Put(commKey(c), one); err != nil {
			return nil, fmt.Errorf("adding comm %q to filter: %w", c, err)
		}
	}
	for _, id := range cgroupIDs {
		if err := r.coll.Maps["filter_cgroups"].Put(id, one); err != nil {
			return nil, fmt.Errorf("adding cgroup %d to filter: %w", id, err)
		}
	}
	for _, pid := range opts.PayloadPIDs {
		if err := r.coll.Maps["payload_pids"].Put(pid, one); err != nil {
			return nil, fmt.Errorf("adding payload pid %d: %w", pid, err)
		}
	}

	r.links, err = attachAll(r.coll, plans)
	if err != nil {
		return nil, err
	}
	for _, p := range plans {
		a := p.attachment()
		r.attachments = append(r.attachments, a)
		if a.Fallback {
			log.Info("attach method fallback", "hook", a.Hook, "method", a.Method, "reason", a.Reason)
		}
	}

	r.rd, err = ringbuf.NewReader(r.coll.Maps["events"])
	if err != nil {
		return nil, fmt.Errorf("opening ring buffer reader: %w", err)
	}

	clockCtx, cancel := context.WithCancel(context.Background())
	r.stopClock = cancel
	go r.clock.run(clockCtx, clockInterval)
	log.Debug("recorder open", "attachments", len(r.attachments), "ring_bytes", opts.RingBytes)
	return r, nil
}

// wakeupBytes is the per-CPU amount of submitted data after which the
// kernel wakes the reader (below it, the reader's poll deadline drains the
// ring): all CPUs together wake it every 1/8 of the ring.
func wakeupBytes(ringBytes int) uint32 {
	ncpu, err := ebpf.PossibleCPU()
	if err != nil || ncpu < 1 {
		ncpu = runtime.NumCPU()
	}
	return uint32(max(ringBytes/8/ncpu, 1))
}

func (o *Options) setDefaults() error {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.RingBytes == 0 {
		o.RingBytes = defaultRingBytes
	}
	page := os.Getpagesize()
	if o.RingBytes < page || o.RingBytes&(o.RingBytes-1) != 0 {
		return fmt.Errorf("ring buffer size %d: must be a power of two and at least the page size (%d)", o.RingBytes, page)
	}
	if o.QueueLen <= 0 {
		o.QueueLen = defaultQueueLen
	}
	if o.PayloadBytes == 0 {
		o.PayloadBytes = MaxPayload
	}
	if o.PayloadBytes < 0 || o.PayloadBytes > MaxPayload {
		return fmt.Errorf("payload bytes %d: must be between 1 and %d", o.PayloadBytes, MaxPayload)
	}
	return nil
}

func loadError(log *slog.Logger, err error) error {
	if errors.Is(err, unix.EPERM) {
		return privilegeError("loading BPF objects", err)
	}
	var ve *ebpf.VerifierError
	if errors.As(err, &ve) {
		log.Debug("verifier log", "log", fmt.Sprintf("%+v", ve))
	}
	return fmt.Errorf("loading BPF objects: %w", err)
}

func commKey(c string) [16]byte {
	var k [16]byte
	copy(k[:15], c) // the kernel keeps 15 bytes and a NUL
	return k
}

// Run reads the ring buffer until ctx is done or Close is called, decoding
// samples into batches on the queue. It never blocks the ring buffer: a
// batch that does not fit in the queue is dropped and counted. Batches is
// closed when Run returns.
func (r *Recorder) Run(ctx context.Context) error {
	r.mu.Lock()
	if r.started || r.closed {
		r.mu.Unlock()
		return errors.New("bpf: recorder already running or closed")
	}
	r.started = true
	r.mu.Unlock()
	defer close(r.batches)

	// Flush wakes a blocked read; Run then notices ctx is done.
	stop := context.AfterFunc(ctx, func() { _ = r.rd.Flush() })
	defer stop()

	var (
		rec ringbuf.Record
		// Decode into a scratch batch of capacity maxBatch. A full (or
		// large) batch is handed out as is and replaced by one the
		// consumer gave back through Release, so at steady load the
		// reader allocates nothing. A small batch (flushed by the deadline
		// at low rates) is copied out at its exact size when no released
		// batch is at hand, so a consumer that never calls Release does not
		// turn every flush into a maxBatch-event allocation.
		batch  = r.getBatch()
		counts [numEventTypes]uint64
	)
	push := func() {
		if len(batch) == 0 {
			return
		}
		for t, n := range counts {
			if n > 0 {
				r.received[t].Add(n)
				counts[t] = 0
			}
		}
		var out, next []Event
		select {
		case next = <-r.free:
			out = batch
		default:
			if len(batch) < maxBatch/4 {
				out = make([]Event, len(batch))
				copy(out, batch)
			} else {
				out, next = batch, make([]Event, 0, maxBatch)
			}
		}
		select {
		case r.batches <- out:
		default:
			r.queueDropped.Add(uint64(len(out)))
			r.droppedBatch.Add(1)
			if next != nil && cap(out) == maxBatch {
				r.Release(next) // keep the dropped batch: nobody else holds it
				next = out
			}
		}
		if next == nil { // out was a copy: the scratch batch stays ours
			clear(batch) // drop references (payloads) it holds
			next = batch
		}
		batch = next[:0]
	}

	r.rd.SetDeadline(time.Now().Add(flushInterval))
	for {
		err := r.rd.ReadInto(&rec)
		switch {
		case err == nil:
			batch = batch[:len(batch)+1]
			e := &batch[len(batch)-1]
			// A recycled event's payload may still be referenced
			// downstream: never let Decode write into it.
			e.Payload = nil
			if derr := Decode(rec.RawSample, e); derr != nil {
				r.decodeErrors.Add(1)
				batch = batch[:len(batch)-1]
				continue
			}
			if restartedSyscall(e) {
				r.restarted.Add(1)
				batch = batch[:len(batch)-1]
				continue
			}
			counts[e.Type]++
			if len(batch) == maxBatch {
				push()
			}
		case errors.Is(err, os.ErrDeadlineExceeded):
			// Wakeups are batched in the kernel; the deadline bounds latency.
			push()
			r.rd.SetDeadline(time.Now().Add(flushInterval))
		case errors.Is(err, ringbuf.ErrFlushed):
			push()
			if ctx.Err() != nil {
				return nil
			}
		case errors.Is(err, ringbuf.ErrClosed):
			push()
			return nil
		default:
			push()
			return fmt.Errorf("reading ring buffer: %w", err)
		}
	}
}

// Batches delivers decoded events. It is closed when Run returns (or by
// Close, if Run never started). A consumer done with a batch may hand it
// back with Release.
func (r *Recorder) Batches() <-chan []Event { return r.batches }

// Release gives a batch received from Batches back to the recorder for
// reuse; the caller must not touch the batch (its Event values) afterwards.
// Payload slices of its events are not reused and stay valid. Calling
// Release is optional: it saves the reader an allocation per batch. It never
// blocks.
func (r *Recorder) Release(batch []Event) {
	if cap(batch) != maxBatch {
		return // an exact-size copy: not worth keeping
	}
	for i := range batch {
		if batch[i].Payload != nil {
			batch[i].Payload = nil // do not keep payloads alive in the free list
		}
	}
	select {
	case r.free <- batch[:0]:
	default:
	}
}

// getBatch returns an empty batch of capacity maxBatch, released or new.
func (r *Recorder) getBatch() []Event {
	select {
	case b := <-r.free:
		return b
	default:
		return make([]Event, 0, maxBatch)
	}
}

// Attachments reports how each hook was attached.
func (r *Recorder) Attachments() []Attachment {
	return append([]Attachment(nil), r.attachments...)
}

// Clock converts event timestamps to wall-clock time.
func (r *Recorder) Clock() *Clock { return r.clock }

// Stats returns a snapshot of the counters.
func (r *Recorder) Stats() Stats {
	s := Stats{
		Received:            map[EventType]uint64{},
		KernelLostByType:    map[EventType]uint64{},
		QueueDropped:        r.queueDropped.Load(),
		QueueDroppedBatches: r.droppedBatch.Load(),
		DecodeErrors:        r.decodeErrors.Load(),
		Restarted:           r.restarted.Load(),
	}
	for _, t := range EventTypes() {
		n := r.received[t].Load()
		s.Received[t] = n
		s.ReceivedTotal += n
	}
	r.mu.Lock()
	lost := r.finalLost
	if lost == nil {
		lost = r.kernelLost()
	}
	r.mu.Unlock()
	for t, n := range lost {
		s.KernelLostByType[t] = n
		s.KernelLost += n
	}
	return s
}

// kernelLost sums the per-CPU reserve-failure counters.
func (r *Recorder) kernelLost() map[EventType]uint64 {
	out := map[EventType]uint64{}
	if r.coll == nil {
		return out
	}
	var perCPU []uint64
	for _, t := range EventTypes() {
		if err := r.coll.Maps["lost"].Lookup(uint32(t), &perCPU); err != nil {
			continue
		}
		var n uint64
		for _, v := range perCPU {
			n += v
		}
		out[t] = n
	}
	return out
}

// AddPID adds pid to the pid filter at run time (e.g. a command launched
// under the recorder), enabling the pid filter if it was off.
func (r *Recorder) AddPID(pid uint32) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errors.New("bpf: recorder closed")
	}
	if err := r.coll.Maps["filter_pids"].Put(pid, uint8(1)); err != nil {
		return fmt.Errorf("adding pid %d to filter: %w", pid, err)
	}
	cfg := r.cfg
	cfg.Filters |= filterPID
	if pid == cfg.SelfTgid {
		cfg.SelfTgid = 0
	}
	if err := r.setConfig(cfg); err != nil {
		return fmt.Errorf("enabling pid filter: %w", err)
	}
	return nil
}

// setConfig publishes cfg to the probes with a new generation, which
// invalidates the filter verdicts they cache per CPU. The generation is
// written last (a second write that changes only it), so a probe that sees
// it also sees the rest of cfg and the filter maps updated before.
func (r *Recorder) setConfig(cfg bpfConfig) error {
	cfg.Gen = r.cfg.Gen
	if err := r.cfgVar.Set(cfg); err != nil {
		return err
	}
	cfg.Gen++
	if err := r.cfgVar.Set(cfg); err != nil {
		return err
	}
	r.cfg = cfg
	return nil
}

// Close detaches all probes, closes the reader and frees the maps. It is
// safe after a partial Open and idempotent.
func (r *Recorder) Close() error {
	r.closeOnce.Do(func() {
		r.mu.Lock()
		r.closed = true
		closeQueue := !r.started
		r.mu.Unlock()

		// Each detach waits for an RCU grace period (~50 ms here); doing
		// them concurrently makes Close take one instead of one per link.
		errs := make([]error, len(r.links)+1)
		var wg sync.WaitGroup
		for i, l := range r.links {
			wg.Go(func() {
				if err := l.Close(); err != nil {
					errs[i] = fmt.Errorf("detaching: %w", err)
				}
			})
		}
		wg.Wait()
		if r.rd != nil {
			if err := r.rd.Close(); err != nil {
				errs[len(r.links)] = fmt.Errorf("closing ring buffer reader: %w", err)
			}
		}
		if r.coll != nil {
			lost := r.kernelLost() // keep Stats meaningful after Close
			r.mu.Lock()
			r.finalLost = lost
			r.mu.Unlock()
			r.coll.Close()
		}
		if r.stopClock != nil {
			r.stopClock()
		}
		if closeQueue {
			close(r.batches)
		}
		r.closeErr = errors.Join(errs...)
	})
	return r.closeErr
}

// restartedSyscall reports a read/write whose result is one of the kernel's internal
// restart codes (ERESTARTSYS 512, ERESTARTNOINTR 513, ERESTARTNOHAND 514,
// ERESTART_RESTARTBLOCK 516): a signal interrupted it and the kernel runs it again (or
// turns the code into EINTR, which the sched_switch and the next attempt still show).
func restartedSyscall(e *Event) bool {
	if e.Type != EventRead && e.Type != EventWrite {
		return false
	}
	switch e.Errno {
	case 512, 513, 514, 516:
		return true
	}
	return false
}
