package wire

import (
	"os"
	"time"
)

// Env is the KPROBE_ environment fallback of a flag: KPROBE_name, or def when unset.
func Env(name, def string) string {
	if v, ok := os.LookupEnv("KPROBE_" + name); ok {
		return v
	}
	return def
}

// EnvDuration is Env for a duration.
func EnvDuration(name string, def time.Duration) time.Duration {
	if v, ok := os.LookupEnv("KPROBE_" + name); ok {
		if d, err := time.ParseDuration(v); err == nil {
			return d
		}
	}
	return def
}
