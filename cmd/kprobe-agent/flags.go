package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"

	"github.com/kprobe/kprobe/cmd/internal/cli"
	"github.com/kprobe/kprobe/cmd/internal/wire"
)

// parsePIDs reads the values of --flag as process ids of running processes: a pid
// that names no process would record nothing, silently.
func parsePIDs(flag string, vals []string) ([]uint32, error) {
	out := make([]uint32, 0, len(vals))
	for _, v := range vals {
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil || n == 0 {
			return nil, fmt.Errorf("--%s %q: want a positive process id", flag, v)
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", n)); errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("--%s %d: no such process", flag, n)
		}
		out = append(out, uint32(n))
	}
	return out, nil
}

// env is the KPROBE_ environment fallback of string flags.
var env = cli.Env

// listFlag is a repeatable flag that also accepts comma-separated values.
type listFlag = wire.List
