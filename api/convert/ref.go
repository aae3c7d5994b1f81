package convert

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	kprobev1 "github.com/kprobe/kprobe/api/kprobe/v1"
	"github.com/kprobe/kprobe/pipeline/investigate"
)

// Every request that names one business object carries the same oneof "ref" (settlement_id,
// payment_id, trace_id, business): GetChainRequest and GetReportRequest inline it, so the
// JSON reads {"settlement_id": "4821"}; QueryEventsRequest nests it as SubjectRef. One
// reflective reader and writer serve all three.

// ErrNoRef is returned (wrapped) when a request names no subject.
var ErrNoRef = errors.New("no subject given: set settlement_id, payment_id, trace_id or business")

// RefOf reads the oneof "ref" of m.
func RefOf(m proto.Message) (investigate.Ref, error) {
	r := m.ProtoReflect()
	od := r.Descriptor().Oneofs().ByName("ref")
	if od == nil {
		return investigate.Ref{}, fmt.Errorf("%s has no subject reference", r.Descriptor().FullName())
	}
	fd := r.WhichOneof(od)
	if fd == nil {
		return investigate.Ref{}, ErrNoRef
	}
	var ref investigate.Ref
	switch fd.Name() {
	case "settlement_id":
		ref = investigate.Ref{Kind: investigate.KindSettlement, ID: r.Get(fd).String()}
	case "payment_id":
		ref = investigate.Ref{Kind: investigate.KindPayment, ID: r.Get(fd).String()}
	case "trace_id":
		ref = investigate.Ref{TraceID: r.Get(fd).String()}
	case "business":
		b, ok := r.Get(fd).Message().Interface().(*kprobev1.BusinessRef)
		if !ok || b.GetKind() == "" {
			return investigate.Ref{}, errors.New("business reference without a kind")
		}
		ref = investigate.Ref{Kind: b.GetKind(), ID: b.GetId()}
	default:
		return investigate.Ref{}, fmt.Errorf("unknown subject field %s", fd.Name())
	}
	if ref.ID == "" && ref.TraceID == "" {
		return investigate.Ref{}, fmt.Errorf("empty %s", fd.Name())
	}
	return ref, nil
}

// SetRef writes ref into the oneof "ref" of m.
func SetRef(m proto.Message, ref investigate.Ref) error {
	r := m.ProtoReflect()
	fields := r.Descriptor().Fields()
	set := func(name protoreflect.Name, v protoreflect.Value) error {
		fd := fields.ByName(name)
		if fd == nil {
			return fmt.Errorf("%s has no field %s", r.Descriptor().FullName(), name)
		}
		r.Set(fd, v)
		return nil
	}
	switch {
	case ref.Kind == investigate.KindSettlement && ref.ID != "":
		return set("settlement_id", protoreflect.ValueOfString(ref.ID))
	case ref.Kind == investigate.KindPayment && ref.ID != "":
		return set("payment_id", protoreflect.ValueOfString(ref.ID))
	case ref.Kind != "" && ref.ID != "":
		b := &kprobev1.BusinessRef{Kind: ref.Kind, Id: ref.ID}
		return set("business", protoreflect.ValueOfMessage(b.ProtoReflect()))
	case ref.TraceID != "":
		return set("trace_id", protoreflect.ValueOfString(ref.TraceID))
	}
	return ErrNoRef
}
