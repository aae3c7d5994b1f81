package bpf

// Stats are the probes' counters. Every event the kernel produced is
// either in Received (read from the ring) or KernelLost (ring buffer full
// at reserve); QueueDropped counts the received events then dropped because
// the consumer of Batches fell further behind than the queue holds (or had
// not taken them at Close); DecodeErrors counts malformed samples.
type Stats struct {
	Received            map[EventType]uint64
	ReceivedTotal       uint64
	KernelLost          uint64
	KernelLostByType    map[EventType]uint64
	QueueDropped        uint64 // events dropped because the queue was full
	QueueDroppedBatches uint64 // chunks (or batches) those events were in
	DecodeErrors        uint64
	// Restarted counts read/write attempts that a signal interrupted and the kernel
	// restarted (ERESTART* results, which no program ever sees): the restarted attempt
	// is the one recorded, as the program saw it.
	Restarted uint64
}

// Stats returns a snapshot of the counters.
func (p *Probes) Stats() Stats {
	s := Stats{
		Received:            map[EventType]uint64{},
		KernelLostByType:    map[EventType]uint64{},
		QueueDropped:        p.queueDropped.Load(),
		QueueDroppedBatches: p.droppedBatch.Load(),
		DecodeErrors:        p.decodeErrors.Load(),
		Restarted:           p.restarted.Load(),
	}
	for _, t := range EventTypes() {
		n := p.received[t].Load()
		s.Received[t] = n
		s.ReceivedTotal += n
	}
	p.mu.Lock()
	lost := p.finalLost
	if lost == nil {
		lost = p.kernelLost()
	}
	p.mu.Unlock()
	for t, n := range lost {
		s.KernelLostByType[t] = n
		s.KernelLost += n
	}
	return s
}

// kernelLost sums the per-CPU reserve-failure counters.
func (p *Probes) kernelLost() map[EventType]uint64 {
	out := map[EventType]uint64{}
	if p.maps.Lost == nil {
		return out
	}
	var perCPU []uint64
	for _, t := range EventTypes() {
		if err := p.maps.Lost.Lookup(uint32(t), &perCPU); err != nil {
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
