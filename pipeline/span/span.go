package span

import "strings"

// Span is one finished trace span. IDs are lowercase hex; ParentID is "" for a root.
type Span struct {
	TraceID  string
	SpanID   string
	ParentID string
	Name     string
	Service  string // resource service.name
	Host     string // resource host.name; must equal event.Event.Node to join
	PID      uint32 // resource process.pid
	TID      uint32 // thread.id, 0 when the span does not say which thread ran it
	// ThreadName is thread.name: the runtime's name of the thread (the JVM gives its
	// threads' names to the kernel, so it can be matched against events' comm).
	ThreadName string
	// HostFrom and PIDFrom say where Host and PID came from when the span's resource did
	// not say: FromReceiver (the node of the receiver the span was sent to), FromPeer
	// (the process at the other end of the OTLP connection); "" is the resource itself.
	HostFrom string
	PIDFrom  string
	StartNs  int64 // wall clock, ns since the Unix epoch
	EndNs    int64
	Attrs    map[string]string // business attributes only (see Business)
	Status   string            // "", "ok" or "error"
}

// Where a span's host or process came from, when not from its resource.
const (
	FromResource = ""
	FromReceiver = "receiver"
	FromPeer     = "peer"
)

// Status values.
const (
	StatusUnset = ""
	StatusOK    = "ok"
	StatusError = "error"
)

// DefaultBusinessPrefixes are the attribute key prefixes kept as business attributes
// when no other set is configured.
var DefaultBusinessPrefixes = []string{"settlement.", "payment.", "clearing.", "order."}

// Business selects the business attributes of a span by key prefix. The zero value keeps
// DefaultBusinessPrefixes.
type Business struct {
	Prefixes []string
}

// Keep reports whether an attribute key is a business key.
func (b Business) Keep(key string) bool {
	prefixes := b.Prefixes
	if prefixes == nil {
		prefixes = DefaultBusinessPrefixes
	}
	for _, p := range prefixes {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	return false
}

// Filter returns the business attributes of attrs. It returns attrs itself when every
// key is kept (no copy on the common path) and nil when none is.
func (b Business) Filter(attrs map[string]string) map[string]string {
	kept := 0
	for k := range attrs {
		if b.Keep(k) {
			kept++
		}
	}
	switch kept {
	case 0:
		return nil
	case len(attrs):
		return attrs
	}
	out := make(map[string]string, kept)
	for k, v := range attrs {
		if b.Keep(k) {
			out[k] = v
		}
	}
	return out
}
