package otlp

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// The trace service is registered by hand, as a stream handler over a pass-through
// codec, rather than with ptraceotlp's generated registration, so that the receiver:
//   - decodes the request itself and answers InvalidArgument for garbage (the
//     generated path answers Internal for an undecodable message);
//   - reserves room for the request before it is read (the in-flight limit);
//   - gives up on a body that does not arrive within BodyTimeout.
//
// A unary call and a one-message stream are the same on the wire.
var traceServiceDesc = grpc.ServiceDesc{
	ServiceName: "opentelemetry.proto.collector.trace.v1.TraceService",
	HandlerType: (*any)(nil),
	Streams: []grpc.StreamDesc{{
		StreamName: "Export",
		Handler:    func(srv any, stream grpc.ServerStream) error { return srv.(*Receiver).serveGRPC(stream) },
	}},
	Metadata: "opentelemetry/proto/collector/trace/v1/trace_service.proto",
}

// grpcRequest is what rawCodec decodes a request into: the decode error is kept rather
// than returned, so the handler can answer InvalidArgument.
type grpcRequest struct {
	req  ptraceotlp.ExportRequest
	size int
	err  error
}

// rawCodec decodes export requests and encodes export responses with pdata.
type rawCodec struct{}

func (rawCodec) Name() string { return "proto" }

func (rawCodec) Marshal(v any) ([]byte, error) {
	if r, ok := v.(*ptraceotlp.ExportResponse); ok {
		return r.MarshalProto()
	}
	return nil, fmt.Errorf("otlp codec: cannot encode %T", v)
}

func (rawCodec) Unmarshal(data []byte, v any) error {
	m, ok := v.(*grpcRequest)
	if !ok {
		return fmt.Errorf("otlp codec: cannot decode into %T", v)
	}
	// pdata copies what it keeps out of data, which gRPC reuses after this returns.
	m.size = len(data)
	m.req = ptraceotlp.NewExportRequest()
	m.err = m.req.UnmarshalProto(data)
	return nil
}

func (r *Receiver) serveGRPC(stream grpc.ServerStream) error {
	ctx := stream.Context()
	var s *sender
	if p, ok := peer.FromContext(ctx); ok {
		s = senderFromAddr(p.Addr)
	}
	if err := r.admitPeer(s); err != nil {
		return status.Error(codes.PermissionDenied, err.Error())
	}
	// The size is known only once the message is read, so room for the largest allowed
	// is reserved first, and the unused part given back after.
	held := int64(r.opts.MaxRequestBytes)
	if !r.admit.acquire(ctx, held) {
		r.cnt.refusedBusy.Add(1)
		return status.Error(codes.Unavailable, "receiver busy: too many request bytes in flight; retry later")
	}
	got := make(chan error, 1)
	var m grpcRequest
	go func() {
		// On a body timeout the handler returns first; the stream's end unblocks this.
		got <- stream.RecvMsg(&m)
	}()
	release := func() { r.admit.release(held) }
	timer := time.NewTimer(r.opts.BodyTimeout)
	defer timer.Stop()
	select {
	case err := <-got:
		if err != nil {
			release()
			return err
		}
	case <-timer.C:
		r.cnt.bodyTimeouts.Add(1)
		go func() { <-got; release() }()
		return status.Errorf(codes.DeadlineExceeded, "request body not received within %v", r.opts.BodyTimeout)
	case <-ctx.Done():
		go func() { <-got; release() }()
		return status.FromContextError(ctx.Err()).Err()
	}
	held = r.admit.shrink(held, int64(m.size))
	defer release()
	if m.err != nil {
		r.cnt.bad.Add(1)
		return status.Errorf(codes.InvalidArgument, "bad otlp export request: %v", m.err)
	}
	resp, err := r.export(ctx, m.req.Traces(), s)
	if err != nil {
		r.log.Warn("otlp grpc export refused", "err", err)
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return status.FromContextError(err).Err()
		}
		return status.Error(codes.Unavailable, err.Error())
	}
	return stream.SendMsg(&resp)
}
