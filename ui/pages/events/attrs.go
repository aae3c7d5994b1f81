package events

import (
	"iter"
	"maps"
	"slices"
)

// sortedAttrs yields a span's business keys in a stable order.
func sortedAttrs(m map[string]string) iter.Seq2[string, string] {
	return func(yield func(string, string) bool) {
		for _, k := range slices.Sorted(maps.Keys(m)) {
			if !yield(k, m[k]) {
				return
			}
		}
	}
}
