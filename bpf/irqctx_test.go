package bpf

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/cilium/ebpf/btf"
)

// percpuBTF is a kernel BTF whose per-CPU section holds vars at offsets.
func percpuBTF(t *testing.T, vars map[string]uint32, types map[string]btf.Type) *btf.Spec {
	t.Helper()
	intType := &btf.Int{Name: "int", Size: 4, Encoding: btf.Signed}
	ds := &btf.Datasec{Name: percpuSection, Size: 1 << 20}
	for name, off := range vars {
		typ := types[name]
		if typ == nil {
			typ = intType
		}
		ds.Vars = append(ds.Vars, btf.VarSecinfo{Type: &btf.Var{Name: name, Type: typ, Linkage: btf.GlobalVar}, Offset: off, Size: 4})
	}
	b, err := btf.NewBuilder([]btf.Type{ds}, nil)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := b.Marshal(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := btf.LoadSpecFromReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

func TestPreemptCountFromRQ(t *testing.T) {
	ptr := &btf.Pointer{Target: &btf.Struct{Name: "task_struct"}}
	intType := &btf.Int{Name: "int", Size: 4, Encoding: btf.Signed}
	// Linux 6.2 to 6.14: the preempt count inside pcpu_hot's anonymous union and struct.
	pcpuHot := &btf.Struct{Name: "pcpu_hot", Size: 64, Members: []btf.Member{{
		Type: &btf.Union{Size: 64, Members: []btf.Member{
			{Type: &btf.Struct{Size: 16, Members: []btf.Member{
				{Name: "current_task", Type: ptr},
				{Name: "preempt_count", Type: intType, Offset: 64},
				{Name: "cpu_number", Type: intType, Offset: 96},
			}}},
			{Name: "pad", Type: &btf.Array{Index: intType, Type: intType, Nelems: 16}},
		}},
	}}}
	tests := []struct {
		name    string
		vars    map[string]uint32
		want    int64
		wantErr string
	}{
		{"__preempt_count", map[string]uint32{"__preempt_count": 86064, "runqueues": 178752}, 86064 - 178752, ""},
		{"pcpu_hot", map[string]uint32{"pcpu_hot": 4096, "runqueues": 1024}, 4096 + 8 - 1024, ""},
		{"no runqueues", map[string]uint32{"__preempt_count": 8}, 0, "no per-CPU runqueues"},
		{"no preempt count", map[string]uint32{"runqueues": 8}, 0, "no per-CPU preempt count"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := percpuBTF(t, tt.vars, map[string]btf.Type{"pcpu_hot": pcpuHot, "runqueues": &btf.Struct{Name: "rq", Size: 4}})
			got, err := preemptCountFromRQ(spec)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %d, %v; want an error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %d, %v; want %d", got, err, tt.want)
			}
		})
	}
}

func TestPreemptCountFromRQThisKernel(t *testing.T) {
	if _, err := os.Stat(btfPath); err != nil {
		t.Skipf("no kernel BTF: %v", err)
	}
	kernel, err := btf.LoadKernelSpec()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := preemptCountFromRQ(kernel); err != nil {
		t.Fatal(err)
	}
}
