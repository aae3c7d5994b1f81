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
	"github.com/cilium/ebpf/btf"
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
	Comms        []string // record only processes of these names, all their threads (truncated to 15 bytes, as the kernel does)
	CgroupIDs    []uint64 // record only these cgroup v2 ids
	CgroupPaths  []string // cgroup v2 directories, resolved to ids by Open
	PayloadPIDs  []uint32 // capture read payload for these tgids
	PayloadBytes int      // bytes captured per read, ≤ MaxPayload (default MaxPayload)
	RingBytes    int      // ring buffer size: power of two multiple of the page size (default 16 MiB)
	BufferBytes  int      // raw samples (~200 bytes each) queued for the decoder (default 64 MiB, taken only by a backlog)
	QueueLen     int      // decoded batches of up to 1024 events handed to the consumer ahead (default 4)
}

// Defaults. They are sized for bursts (BenchmarkBurst in pipeline/recorder,
// BENCHMARKS.md): on two cores a consumer writing JSONL to a file falls
// behind a 1 M/s write(2) loop for as long as it lasts, and one starved of
// CPU falls behind anything for a while. The queue behind the reader holds
// 64 MiB of raw samples (~330k events, taken only while a backlog lasts)
// and the 16 MiB ring ~84k more.
const (
	DefaultRingBytes   = 16 << 20
	DefaultBufferBytes = 64 << 20
	defaultQueueLen    = 4
	freeBatches        = 16 // decoded batches kept for reuse
	maxBatch           = 1024
	flushInterval      = 100 * time.Millisecond // latency bound when the kernel skips wakeups
	clockInterval      = 10 * time.Second
)

// Filter bits of struct config (probes/maps.h).
const (
	filterPID     = 1
	filterComm    = 2
	filterCgroup  = 4
	filterPayload = 8
)

// Probes owns the loaded BPF programs and maps, their links and the
// ring-buffer reader, and turns the ring buffer into batches of Events.
type Probes struct {
	log         *slog.Logger
	maps        bpfMaps
	vars        bpfVariables
	coll        *ebpf.Collection // the loaded programs (maps and variables are assigned out)
	links       []link.Link
	rd          *ringbuf.Reader
	attachments []Attachment
	clock       *Clock
	stopClock   context.CancelFunc
	raw         chan rawChunk // read, not yet decoded (run.go)
	freeRaw     chan []byte   // chunks the decoder is done with
	closing     chan struct{} // closed by Close: the decoder stops waiting for the consumer
	batches     chan []Event
	free        chan []Event // batches handed back by Release, for the decoder to reuse

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
func Open(ctx context.Context, opts Options) (*Probes, error) {
	return open(ctx, opts, kernelProber{})
}

func open(ctx context.Context, opts Options, prober prober) (_ *Probes, err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	opts, err = opts.withDefaults()
	if err != nil {
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
	var specs bpfSpecs
	if err := spec.Assign(&specs); err != nil {
		return nil, fmt.Errorf("parsing BPF objects: %w", err)
	}
	plans := planHooks(prober, &specs.bpfProgramSpecs)
	pruneSpec(spec, plans)
	specs.Events.MaxEntries = uint32(opts.RingBytes)
	// Parsing the kernel's BTF takes ~0.1 s: once, for CO-RE and for us.
	kernel, err := btf.LoadKernelSpec()
	if err != nil {
		return nil, fmt.Errorf("loading kernel BTF: %w", err)
	}
	if err := setIRQContext(&specs, kernel, log); err != nil {
		return nil, err
	}

	p := &Probes{
		log:     log,
		clock:   NewClock(),
		raw:     make(chan rawChunk, max(opts.BufferBytes/chunkBytes, 1)),
		freeRaw: make(chan []byte, freeChunks),
		closing: make(chan struct{}),
		batches: make(chan []Event, opts.QueueLen),
		free:    make(chan []Event, freeBatches),
	}
	defer func() {
		if err != nil {
			p.Close()
		}
	}()

	p.cfg = initialConfig(opts, len(cgroupIDs) > 0)
	// Set before load so the filters hold from the first event.
	if err := specs.Cfg.Set(p.cfg); err != nil {
		return nil, fmt.Errorf("setting BPF config: %w", err)
	}

	p.coll, err = ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{
		Programs: ebpf.ProgramOptions{KernelTypes: kernel},
	})
	if err != nil {
		return nil, loadError(log, err)
	}
	if err := p.coll.Assign(&p.maps); err != nil {
		return nil, fmt.Errorf("loading BPF maps: %w", err)
	}
	if err := p.coll.Assign(&p.vars); err != nil {
		return nil, fmt.Errorf("loading BPF variables: %w", err)
	}
	if err := p.fillFilters(opts, cgroupIDs); err != nil {
		return nil, err
	}

	p.links, err = attachAll(p.coll, plans)
	if err != nil {
		return nil, err
	}
	for _, plan := range plans {
		a := plan.attachment()
		p.attachments = append(p.attachments, a)
		if a.Fallback {
			log.Info("attach method fallback", "hook", a.Hook, "method", a.Method, "reason", a.Reason)
		}
	}

	p.rd, err = ringbuf.NewReader(p.maps.Events)
	if err != nil {
		return nil, fmt.Errorf("opening ring buffer reader: %w", err)
	}

	clockCtx, cancel := context.WithCancel(context.Background())
	p.stopClock = cancel
	go p.clock.run(clockCtx, clockInterval)
	log.Debug("probes open", "attachments", len(p.attachments), "ring_bytes", opts.RingBytes)
	return p, nil
}

// initialConfig is struct config for opts: the active filters, the
// recorder's own process excluded unless it is asked for by pid.
func initialConfig(opts Options, cgroups bool) bpfConfig {
	cfg := bpfConfig{
		SelfTgid:     uint32(os.Getpid()),
		PayloadBytes: uint32(opts.PayloadBytes),
		WakeupBytes:  wakeupBytes(opts.RingBytes),
	}
	for _, pid := range opts.PIDs {
		if pid == cfg.SelfTgid {
			cfg.SelfTgid = 0
		}
	}
	if len(opts.PIDs) > 0 {
		cfg.Filters |= filterPID
	}
	if len(opts.Comms) > 0 {
		cfg.Filters |= filterComm
	}
	if cgroups {
		cfg.Filters |= filterCgroup
	}
	if len(opts.PayloadPIDs) > 0 {
		cfg.Filters |= filterPayload
	}
	return cfg
}

// fillFilters puts the selection into the filter maps.
func (p *Probes) fillFilters(opts Options, cgroupIDs []uint64) error {
	one := uint8(1)
	for _, pid := range opts.PIDs {
		if err := p.maps.FilterPids.Put(pid, one); err != nil {
			return fmt.Errorf("adding pid %d to filter: %w", pid, err)
		}
	}
	for _, c := range opts.Comms {
		if err := p.maps.FilterComms.Put(commKey(c), one); err != nil {
			return fmt.Errorf("adding comm %q to filter: %w", c, err)
		}
	}
	for _, id := range cgroupIDs {
		if err := p.maps.FilterCgroups.Put(id, one); err != nil {
			return fmt.Errorf("adding cgroup %d to filter: %w", id, err)
		}
	}
	for _, pid := range opts.PayloadPIDs {
		if err := p.maps.PayloadPids.Put(pid, one); err != nil {
			return fmt.Errorf("adding payload pid %d: %w", pid, err)
		}
	}
	return nil
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

func (o Options) withDefaults() (Options, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.RingBytes == 0 {
		o.RingBytes = DefaultRingBytes
	}
	page := os.Getpagesize()
	if o.RingBytes < page || o.RingBytes&(o.RingBytes-1) != 0 {
		return o, fmt.Errorf("ring buffer size %d: must be a power of two and at least the page size (%d)", o.RingBytes, page)
	}
	if o.QueueLen <= 0 {
		o.QueueLen = defaultQueueLen
	}
	if o.BufferBytes == 0 {
		o.BufferBytes = DefaultBufferBytes
	}
	if o.BufferBytes < chunkBytes {
		return o, fmt.Errorf("buffer bytes %d: must be at least %d", o.BufferBytes, chunkBytes)
	}
	if o.PayloadBytes == 0 {
		o.PayloadBytes = MaxPayload
	}
	if o.PayloadBytes < 0 || o.PayloadBytes > MaxPayload {
		return o, fmt.Errorf("payload bytes %d: must be between 1 and %d", o.PayloadBytes, MaxPayload)
	}
	return o, nil
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

// Attachments reports how each hook was attached.
func (p *Probes) Attachments() []Attachment {
	return append([]Attachment(nil), p.attachments...)
}

// Clock converts event timestamps to wall-clock time.
func (p *Probes) Clock() *Clock { return p.clock }

// AddPID adds pid to the pid filter at run time (e.g. a command launched
// under the recorder), enabling the pid filter if it was off.
func (p *Probes) AddPID(pid uint32) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("bpf: probes closed")
	}
	if err := p.maps.FilterPids.Put(pid, uint8(1)); err != nil {
		return fmt.Errorf("adding pid %d to filter: %w", pid, err)
	}
	cfg := p.cfg
	cfg.Filters |= filterPID
	if pid == cfg.SelfTgid {
		cfg.SelfTgid = 0
	}
	if err := p.setConfig(cfg); err != nil {
		return fmt.Errorf("enabling pid filter: %w", err)
	}
	return nil
}

// setConfig publishes cfg to the probes with a new generation, which
// invalidates the filter verdicts they cache per CPU. The generation is
// written last (a second write that changes only it), so a probe that sees
// it also sees the rest of cfg and the filter maps updated before.
func (p *Probes) setConfig(cfg bpfConfig) error {
	cfg.Gen = p.cfg.Gen
	if err := p.vars.Cfg.Set(cfg); err != nil {
		return err
	}
	cfg.Gen++
	if err := p.vars.Cfg.Set(cfg); err != nil {
		return err
	}
	p.cfg = cfg
	return nil
}

// Close detaches all probes, closes the reader and frees the maps. It is
// safe after a partial Open and idempotent.
func (p *Probes) Close() error {
	p.closeOnce.Do(func() {
		p.mu.Lock()
		p.closed = true
		closeQueue := !p.started
		p.mu.Unlock()
		close(p.closing)

		// Each detach waits for an RCU grace period (~50 ms here); doing
		// them concurrently makes Close take one instead of one per link.
		errs := make([]error, len(p.links)+1)
		var wg sync.WaitGroup
		for i, l := range p.links {
			wg.Go(func() {
				if err := l.Close(); err != nil {
					errs[i] = fmt.Errorf("detaching: %w", err)
				}
			})
		}
		wg.Wait()
		if p.rd != nil {
			if err := p.rd.Close(); err != nil {
				errs[len(p.links)] = fmt.Errorf("closing ring buffer reader: %w", err)
			}
		}
		if p.maps.Lost != nil {
			lost := p.kernelLost() // keep Stats meaningful after Close
			p.mu.Lock()
			p.finalLost = lost
			p.mu.Unlock()
		}
		p.maps.Close() // nil-safe: a partial load leaves some unset
		if p.coll != nil {
			p.coll.Close()
		}
		if p.stopClock != nil {
			p.stopClock()
		}
		if closeQueue {
			close(p.batches)
		}
		p.closeErr = errors.Join(errs...)
	})
	return p.closeErr
}
