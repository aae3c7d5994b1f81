package engine

import "github.com/kprobe/kprobe/pipeline/bus"

// pending tracks consumed messages per partition until they are safe to commit. A
// message is safe once everything it carried has been written: for kernel batches, when
// the correlator has emitted past the batch's newest event; for spans, when no future
// event can still join them. Commits are in partition order, as Kafka requires.
type pending struct {
	parts map[partKey][]held
}

type partKey struct {
	topic     string
	partition int
}

type held struct {
	msg   bus.Message
	until int64 // safe once the emitted watermark is past this wall-clock ns
}

func newPending() *pending { return &pending{parts: map[partKey][]held{}} }

func (p *pending) add(m bus.Message, until int64) {
	k := partKey{m.Topic, m.Partition}
	p.parts[k] = append(p.parts[k], held{msg: m, until: until})
}

// ready pops, per partition, the longest prefix whose messages are safe below the mark of
// their topic, and returns the last message of each prefix (committing it commits the
// ones before it).
func (p *pending) ready(markOf func(topic string) int64) []bus.Message {
	var out []bus.Message
	for k, q := range p.parts {
		mark := markOf(k.topic)
		n := 0
		for n < len(q) && q[n].until < mark {
			n++
		}
		if n == 0 {
			continue
		}
		out = append(out, q[n-1].msg)
		rest := copy(q, q[n:])
		clear(q[rest:])
		p.parts[k] = q[:rest]
	}
	return out
}

func (p *pending) len() int {
	n := 0
	for _, q := range p.parts {
		n += len(q)
	}
	return n
}
