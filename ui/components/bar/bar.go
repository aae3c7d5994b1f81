// Package bar draws the share of a whole as a fixed-width bar ("██████░░░░ 62 %"): the
// latency a cause explains, at a glance and without colour.
package bar

import (
	"math"
	"strings"

	"github.com/kprobe/kprobe/ui/styles"
)

// Render draws share (0..1) in width cells.
func Render(st *styles.Styles, share float64, width int) string {
	if width <= 0 {
		return ""
	}
	share = math.Max(0, math.Min(1, share))
	full := int(math.Round(share * float64(width)))
	if full == 0 && share > 0 {
		full = 1 // a cause that explains anything shows
	}
	return st.BarFull.Render(strings.Repeat("█", full)) + st.BarEmpty.Render(strings.Repeat("░", width-full))
}
