package server

import (
	"context"
	"errors"
	"fmt"

	"connectrpc.com/connect"

	"github.com/kprobe/kprobe/pipeline/investigate"
)

// invalid is the error for a request the server will not run.
func invalid(format string, args ...any) error {
	return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf(format, args...))
}

// fromService gives an error of the use-case layer its code: bad input and unknown IDs are
// the caller's to fix, never Internal.
func fromService(err error) error {
	if err == nil {
		return nil
	}
	var ce *connect.Error
	switch {
	case errors.As(err, &ce):
		return err
	case errors.Is(err, investigate.ErrNotFound):
		return connect.NewError(connect.CodeNotFound, err)
	case errors.Is(err, investigate.ErrInvalid):
		return connect.NewError(connect.CodeInvalidArgument, err)
	case errors.Is(err, context.Canceled):
		return connect.NewError(connect.CodeCanceled, err)
	case errors.Is(err, context.DeadlineExceeded):
		return connect.NewError(connect.CodeDeadlineExceeded, err)
	}
	return connect.NewError(connect.CodeInternal, err)
}

// logErrors logs what the server failed at (Internal, Unknown); the caller's mistakes are
// answered, not logged.
func (s *Server) logErrors() connect.Interceptor {
	return errLogger{s: s}
}

type errLogger struct{ s *Server }

func (l errLogger) log(procedure string, err error) {
	if code := connect.CodeOf(err); code == connect.CodeInternal || code == connect.CodeUnknown {
		l.s.log.Error("request failed", "procedure", procedure, "err", err)
	}
}

func (l errLogger) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		res, err := next(ctx, req)
		if err != nil {
			l.log(req.Spec().Procedure, err)
		}
		return res, err
	}
}

func (l errLogger) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (l errLogger) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		err := next(ctx, conn)
		if err != nil {
			l.log(conn.Spec().Procedure, err)
		}
		return err
	}
}
