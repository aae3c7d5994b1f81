package investigate

import (
	"fmt"
	"strings"
	"time"
)

// HumanDuration prints a duration with three significant digits in the unit an SRE
// reads fastest: "812 ms", "1.25 s", "35.2 µs".
func HumanDuration(ns int64) string {
	neg := ns < 0
	if neg {
		ns = -ns
	}
	var s string
	switch {
	case ns < 1_000:
		s = fmt.Sprintf("%d ns", ns)
	case ns < 1_000_000:
		s = sig3(float64(ns)/1e3) + " µs"
	case ns < 1_000_000_000:
		s = sig3(float64(ns)/1e6) + " ms"
	default:
		s = sig3(float64(ns)/1e9) + " s"
	}
	if neg {
		return "-" + s
	}
	return s
}

func sig3(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

// Clock prints a wall-clock time in UTC to the microsecond: "10:00:00.120000".
func Clock(ns int64) string {
	return time.Unix(0, ns).UTC().Format("15:04:05.000000")
}

// Stamp prints a full UTC timestamp to the millisecond: "2026-11-25 10:00:00.120 UTC".
func Stamp(ns int64) string {
	return time.Unix(0, ns).UTC().Format("2006-01-02 15:04:05.000 UTC")
}

// Percent prints a 0..1 share as a whole percentage ("78 %"), "<1 %" for small ones.
func Percent(share float64) string {
	p := share * 100
	if p > 0 && p < 1 {
		return "<1 %"
	}
	return fmt.Sprintf("%.0f %%", p)
}

// RefFlags is the flag that selects a subject on kprobe-tui's command line.
func RefFlags(r Ref) string {
	switch {
	case r.ID != "" && r.Kind != "":
		return fmt.Sprintf("--%s %s", strings.ReplaceAll(r.Kind, "_", "-"), shellQuote(r.ID))
	case r.TraceID != "":
		return "--trace " + r.TraceID
	}
	return ""
}

// RefName names a subject in prose: "settlement 4821", "trace 4bf9…".
func RefName(r Ref) string {
	switch {
	case r.ID != "":
		return strings.ReplaceAll(r.Kind, "_", " ") + " " + r.ID
	case r.TraceID != "":
		return "trace " + r.TraceID
	}
	return "(nothing)"
}

func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r == '-' || r == '_' || r == '.' || r == '/' || r == ':' ||
			r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
