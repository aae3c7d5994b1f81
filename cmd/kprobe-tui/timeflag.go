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
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		return n, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return 0, fmt.Errorf("--%s %q: want RFC 3339 (2026-11-25T10:00:00.5Z) or nanoseconds since the epoch", flagName, v)
	}
	return t.UnixNano(), nil
}
