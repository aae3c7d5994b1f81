package causal

import (
	"fmt"
	"os"
	"testing"
	"time"
)

// go test -run Scratch -v ./pipeline/causal  SCRATCH_EV=... SCRATCH_SP=... SCRATCH_SUBJ=...
func TestScratch(t *testing.T) {
	if os.Getenv("SCRATCH_EV") == "" {
		t.Skip()
	}
	idx, subs := scratchLoad(t, os.Getenv("SCRATCH_EV"), os.Getenv("SCRATCH_SP"))
	sub := subs[os.Getenv("SCRATCH_SUBJ")]
	roots := rootSpans(sub.Spans)
	an := newAnalyzer(idx)
	ids := map[string]bool{}
	for _, s := range sub.Spans {
		ids[s.SpanID] = true
	}
	for _, root := range roots {
		k, conf, join, _ := an.threadOf(root, ids)
		v := idx.view(k, root.StartNs, root.EndNs)
		def := mark{c: an.unexplained(), rule: RuleRemainder, conf: conf, join: join}
		byRule := map[string]time.Duration{}
		n := map[string]int{}
		for _, m := range resolve(an.threadMarks(v, root.StartNs, root.EndNs, conf, join), root.StartNs, root.EndNs, &def) {
			key := m.c.key + " :: " + m.rule[:20]
			byRule[key] += time.Duration(m.b - m.a)
			n[key]++
			if os.Getenv("SCRATCH_V") != "" && m.c.kind == KindUnexplained && m.b-m.a > 200000 {
				fmt.Printf("  unexpl %d +%v %s\n", (m.a-root.StartNs)/1000, time.Duration(m.b-m.a), m.rule[:20])
			}
		}
		for k, d := range byRule {
			fmt.Printf("%-70s %12v %d\n", k, d, n[k])
		}
	}
}
