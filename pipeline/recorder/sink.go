package recorder

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"sync/atomic"

	"github.com/kprobe/kprobe/pipeline/bus"
	"github.com/kprobe/kprobe/pipeline/event"
)

// JSONL writes one JSON object per event.
type JSONL struct {
	w   *bufio.Writer
	buf []byte
}

// NewJSONL returns a sink writing to w; call Flush when done.
func NewJSONL(w io.Writer) *JSONL { return &JSONL{w: bufio.NewWriterSize(w, 256<<10)} }

// Write implements Sink.
func (j *JSONL) Write(_ context.Context, events []event.Event) error {
	for i := range events {
		j.buf = event.AppendJSON(j.buf[:0], &events[i])
		j.buf = append(j.buf, '\n')
		if _, err := j.w.Write(j.buf); err != nil {
			return fmt.Errorf("writing jsonl: %w", err)
		}
	}
	return nil
}

// Flush writes out what is buffered.
func (j *JSONL) Flush() error { return j.w.Flush() }

// Publish encodes events as protobuf batches, one per topic and process, so that a
// process's events stay ordered under one key, and hands them to a bus publisher.
type Publish struct {
	pub     bus.Publisher
	prefix  string
	max     int
	groups  map[groupKey]*group // of the last Write: their slices are reused
	order   []*group
	sent    atomic.Uint64
	dropped atomic.Uint64
}

type groupKey struct {
	topic string
	node  string
	pid   uint32
}

type group struct {
	key  groupKey
	evs  []event.Event
	used bool
}

// NewPublish returns a sink that publishes batches of at most maxBatch events to the
// kernel topics, their names prefixed by topicPrefix (to keep tenants or tests apart).
func NewPublish(pub bus.Publisher, maxBatch int, topicPrefix string) *Publish {
	if maxBatch <= 0 {
		maxBatch = 512
	}
	return &Publish{pub: pub, max: maxBatch, prefix: topicPrefix, groups: map[groupKey]*group{}}
}

// Write implements Sink. Events the publisher cannot take are counted as dropped.
func (p *Publish) Write(_ context.Context, events []event.Event) error {
	for i := range events {
		e := &events[i]
		k := groupKey{e.Type.Topic(), e.Node, e.PID}
		g := p.groups[k]
		if g == nil {
			g = &group{key: k}
			p.groups[k] = g
		}
		if !g.used {
			g.used = true
			p.order = append(p.order, g)
		}
		g.evs = append(g.evs, *e)
	}
	var firstErr error
	for _, g := range p.order {
		for evs := g.evs; len(evs) > 0; {
			n := min(len(evs), p.max)
			if err := p.send(g.key, evs[:n]); err != nil && firstErr == nil {
				firstErr = err
			}
			evs = evs[n:]
		}
		clear(g.evs) // payloads and strings are not kept alive until the next Write
		g.evs = g.evs[:0]
	}
	p.order = p.order[:0]
	// Keep only the groups of this Write: processes come and go.
	for k, g := range p.groups {
		if !g.used {
			delete(p.groups, k)
		}
		g.used = false
	}
	return firstErr
}

func (p *Publish) send(k groupKey, evs []event.Event) error {
	data, err := event.MarshalBatch(evs)
	if err != nil {
		p.dropped.Add(uint64(len(evs)))
		return err
	}
	if !p.pub.Publish(bus.Message{Topic: p.prefix + k.topic, Key: evs[0].Key(), Value: data}) {
		p.dropped.Add(uint64(len(evs)))
		return nil
	}
	p.sent.Add(uint64(len(evs)))
	return nil
}

// Stats returns events published and dropped (publisher full or encoding failed).
func (p *Publish) Stats() (sent, dropped uint64) { return p.sent.Load(), p.dropped.Load() }
