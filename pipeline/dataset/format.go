package dataset

import (
	"bufio"
	"compress/gzip"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/kprobe/kprobe/pipeline/event"
	"github.com/kprobe/kprobe/pipeline/span"
)

// The file is gzip over: the magic line, then frames of one kind byte, a uvarint length
// and that many bytes. 'M' is the metadata (JSON), 'S' a batch of spans (JSON), 'E' a
// batch of raw kernel events (event.MarshalBatch). Unknown kinds are skipped, so later
// versions may add frames.
const (
	magic     = "kprobe-dataset 1\n"
	kindMeta  = 'M'
	kindSpans = 'S'
	kindEvent = 'E'
	maxFrame  = 64 << 20
	batchSize = 4096
)

// Meta says what a dataset holds and how it was recorded.
type Meta struct {
	Title      string   `json:"title"`
	RecordedAt string   `json:"recorded_at"` // RFC 3339
	Kernel     string   `json:"kernel"`      // uname -r of the recording machine
	Command    []string `json:"command"`     // what was recorded
	Node       string   `json:"node"`
	Events     int      `json:"events"`
	Spans      int      `json:"spans"`
}

// Dataset is a recorded incident.
type Dataset struct {
	Meta   Meta
	Spans  []span.Span
	Events []event.Event // raw: as the recorder published them, not yet joined to spans
}

// Write encodes d.
func Write(w io.Writer, d Dataset) error {
	zw, err := gzip.NewWriterLevel(w, gzip.BestCompression)
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(zw)
	bw.WriteString(magic)
	frame := func(kind byte, p []byte) {
		var hdr [1 + binary.MaxVarintLen64]byte
		hdr[0] = kind
		n := binary.PutUvarint(hdr[1:], uint64(len(p)))
		bw.Write(hdr[:1+n])
		bw.Write(p)
	}
	d.Meta.Events, d.Meta.Spans = len(d.Events), len(d.Spans)
	meta, err := json.Marshal(d.Meta)
	if err != nil {
		return err
	}
	frame(kindMeta, meta)
	for i := 0; i < len(d.Spans); i += batchSize {
		p, err := json.Marshal(d.Spans[i:min(i+batchSize, len(d.Spans))])
		if err != nil {
			return err
		}
		frame(kindSpans, p)
	}
	for i := 0; i < len(d.Events); i += batchSize {
		p, err := event.MarshalBatch(d.Events[i:min(i+batchSize, len(d.Events))])
		if err != nil {
			return fmt.Errorf("encoding events: %w", err)
		}
		frame(kindEvent, p)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("writing the dataset: %w", err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("writing the dataset: %w", err)
	}
	return nil
}

// Read decodes a dataset; a damaged or foreign file is an error naming what is wrong.
func Read(r io.Reader) (Dataset, error) {
	var d Dataset
	zr, err := gzip.NewReader(r)
	if err != nil {
		return d, fmt.Errorf("not a kprobe dataset (not gzip): %w", err)
	}
	br := bufio.NewReader(zr)
	head := make([]byte, len(magic))
	if _, err := io.ReadFull(br, head); err != nil || string(head) != magic {
		return d, errors.New("not a kprobe dataset (bad header)")
	}
	haveMeta := false
	for n := 0; ; n++ {
		kind, err := br.ReadByte()
		if err == io.EOF {
			break
		}
		if err != nil {
			return d, fmt.Errorf("dataset frame %d: %w", n, err)
		}
		size, err := binary.ReadUvarint(br)
		if err != nil || size > maxFrame {
			return d, fmt.Errorf("dataset frame %d: bad length", n)
		}
		p := make([]byte, size)
		if _, err := io.ReadFull(br, p); err != nil {
			return d, fmt.Errorf("dataset frame %d: truncated: %w", n, err)
		}
		switch kind {
		case kindMeta:
			if err := json.Unmarshal(p, &d.Meta); err != nil {
				return d, fmt.Errorf("dataset metadata: %w", err)
			}
			haveMeta = true
		case kindSpans:
			var ss []span.Span
			if err := json.Unmarshal(p, &ss); err != nil {
				return d, fmt.Errorf("dataset frame %d (spans): %w", n, err)
			}
			d.Spans = append(d.Spans, ss...)
		case kindEvent:
			evs, err := event.UnmarshalBatch(p)
			if err != nil {
				return d, fmt.Errorf("dataset frame %d (events): %w", n, err)
			}
			d.Events = append(d.Events, evs...)
		}
	}
	if !haveMeta {
		return d, errors.New("not a kprobe dataset (no metadata)")
	}
	if d.Meta.Events != len(d.Events) || d.Meta.Spans != len(d.Spans) {
		return d, fmt.Errorf("dataset is incomplete: %d of %d events, %d of %d spans", len(d.Events), d.Meta.Events, len(d.Spans), d.Meta.Spans)
	}
	return d, nil
}
