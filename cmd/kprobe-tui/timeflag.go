package main

import (
	"fmt"
	"strconv"
	"time"
)

// parseTime accepts RFC 3339 (with fractions) or integer nanoseconds since the epoch.
func parseTime(flagName, v string) (int64, error) {
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		t, perr := time.Parse(time.RFC3339Nano, v)
		if perr != nil {
			return 0, fmt.Errorf("--%s %q: want RFC 3339 (2026-11-25T10:00:00.5Z) or nanoseconds since the epoch", flagName, v)
		}
		n = t.UnixNano()
	}
	if n < 0 {
		return 0, fmt.Errorf("--%s %q: before the epoch (1970): nothing was recorded then", flagName, v)
	}
	return n, nil
}

// window is a --from/--to time window; given says whether either was on the command line
// (--from 0 is a window too: everything).
type window struct {
	from, to int64
	given    bool
}

// parseWindow reads --from (inclusive) and --to (exclusive); an empty or reversed window
// is refused rather than answered with nothing.
func parseWindow(from, to string) (window, error) {
	var w window
	var err error
	if w.from, err = parseTime("from", from); err != nil {
		return w, err
	}
	if w.to, err = parseTime("to", to); err != nil {
		return w, err
	}
	w.given = from != "" || to != ""
	if to != "" && w.to <= w.from {
		return w, fmt.Errorf("--from %s is not before --to %s: the window is empty", from, to)
	}
	return w, nil
}
