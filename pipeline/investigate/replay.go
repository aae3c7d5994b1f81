package investigate

import (
	"context"

	"github.com/kprobe/kprobe/pipeline/event"
	"github.com/kprobe/kprobe/replay"
)

// ReplayLog is where the replay engine reads a recording through the use cases: any
// Service (the embedded stores, a cluster's, the API) serves one.
func ReplayLog(s Service) replay.Log { return serviceLog{s} }

type serviceLog struct{ s Service }

func (l serviceLog) Syscalls(ctx context.Context, q replay.Query) ([]event.Event, error) {
	return l.s.SyscallLog(ctx, SyscallLogQuery{Node: q.Node, PID: q.PID, From: q.From, To: q.To})
}
