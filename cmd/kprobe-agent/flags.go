package main

import (
	"fmt"
	"strconv"

	"github.com/kprobe/kprobe/cmd/internal/wire"
)

func parsePIDs(vals []string) ([]uint32, error) {
	out := make([]uint32, 0, len(vals))
	for _, v := range vals {
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil || n == 0 {
			return nil, fmt.Errorf("--pid %q: want a positive process id", v)
		}
		out = append(out, uint32(n))
	}
	return out, nil
}

// env and envDuration are the KPROBE_ environment fallbacks of flags.
var (
	env         = wire.Env
	envDuration = wire.EnvDuration
)

// listFlag is a repeatable flag that also accepts comma-separated values.
type listFlag = wire.List
