package eventlog

import (
	"runtime"
	"testing"
	"unsafe"

	"github.com/google/go-cmp/cmp"
)

// TestCStrings: what the binding hands to C is each string NUL-terminated, its length
// without the NUL, and a nil after the last (argv's end), through a collection that would
// move nothing but frees what nothing pins or references.
func TestCStrings(t *testing.T) {
	strs := []string{"kprobe", "--path=/tmp/x", ""}
	var pin runtime.Pinner
	defer pin.Unpin()
	lens := make([]uintptr, len(strs))
	ptrs := cStrings(&pin, strs, lens)
	runtime.GC()
	if ptrs[len(strs)] != nil {
		t.Fatalf("no nil after the last string: %v", ptrs)
	}
	var got []string
	for i := range strs {
		got = append(got, cString(ptrs[i]))
		if end := *(*byte)(unsafe.Add(ptrs[i], lens[i])); end != 0 {
			t.Errorf("string %d: byte %d is %#x, want the NUL", i, lens[i], end)
		}
	}
	if diff := cmp.Diff(strs, got); diff != "" {
		t.Errorf("strings (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]uintptr{6, 13, 0}, lens); diff != "" {
		t.Errorf("lengths (-want +got):\n%s", diff)
	}
}
