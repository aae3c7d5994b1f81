package sysno

import (
	"sort"
	"sync"
)

// Name returns the syscall's name ("read"), or "syscall_N" for a number it does not know.
func Name(nr int) string {
	if n, ok := names[nr]; ok {
		return n
	}
	return "syscall_" + itoa(nr)
}

// Number returns the number of the named syscall.
func Number(name string) (int, bool) {
	byNameOnce.Do(indexNames)
	nr, ok := byName[name]
	return nr, ok
}

// Names lists every known name, sorted.
func Names() []string {
	byNameOnce.Do(indexNames)
	out := make([]string, 0, len(byName))
	for n := range byName {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

var (
	byNameOnce sync.Once
	byName     map[string]int
)

func indexNames() {
	byName = make(map[string]int, len(names))
	for nr, n := range names {
		byName[n] = nr
	}
}

func itoa(n int) string {
	if n < 0 {
		return "-" + itoa(-n)
	}
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + string(rune('0'+n%10))
}
