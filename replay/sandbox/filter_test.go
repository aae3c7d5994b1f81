package sandbox

import (
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// runFilter interprets the classic BPF subset buildFilter emits against one seccomp_data.
// It fails on a load of anything but nr and arch: the kernel's action cache (Linux 5.11+)
// proves a syscall's verdict constant only by running the filter on those two, and an
// unserved syscall whose verdict it cannot prove runs the filter on every call.
func runFilter(t *testing.T, prog []unix.SockFilter, nr int, arch uint32) uint32 {
	t.Helper()
	var data [64]byte
	binary.LittleEndian.PutUint32(data[offNr:], uint32(nr))
	binary.LittleEndian.PutUint32(data[offArch:], arch)
	var acc uint32
	for pc := 0; pc < len(prog); pc++ {
		f := prog[pc]
		switch f.Code {
		case unix.BPF_LD | unix.BPF_W | unix.BPF_ABS:
			if f.K != offNr && f.K != offArch {
				t.Fatalf("the filter reads seccomp_data at offset %d (pc %d): the kernel cannot cache its verdicts", f.K, pc)
			}
			acc = binary.LittleEndian.Uint32(data[f.K:])
		case unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K:
			if acc == f.K {
				pc += int(f.Jt)
			} else {
				pc += int(f.Jf)
			}
		case unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K:
			if acc >= f.K {
				pc += int(f.Jt)
			} else {
				pc += int(f.Jf)
			}
		case unix.BPF_RET | unix.BPF_K:
			return f.K
		default:
			t.Fatalf("unexpected instruction %#x at %d", f.Code, pc)
		}
	}
	t.Fatalf("program fell off its end")
	return 0
}

func TestBuildFilterVerdicts(t *testing.T) {
	for _, size := range []int{0, 1, 2, 3, 4, 7, 40, 120} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			var notify, trace []int
			want := map[int]uint32{}
			for i := 0; i < size; i++ {
				nr := i*3 + 1
				if i%4 == 3 {
					trace = append(trace, nr)
					want[nr] = unix.SECCOMP_RET_TRACE
				} else {
					notify = append(notify, nr)
					want[nr] = unix.SECCOMP_RET_USER_NOTIF
				}
			}
			prog, err := buildFilter(notify, trace)
			if err != nil {
				t.Fatal(err)
			}
			got := map[int]uint32{}
			for nr := 0; nr < 500; nr++ {
				if v := runFilter(t, prog, nr, auditArchX86_64); v != unix.SECCOMP_RET_ALLOW {
					got[nr] = v
				}
				if v := runFilter(t, prog, nr, 0x40000003); v != unix.SECCOMP_RET_ALLOW {
					t.Fatalf("i386 syscall %d: verdict %#x, want allow", nr, v)
				}
				if v := runFilter(t, prog, nr|x32SyscallBit, auditArchX86_64); v != unix.SECCOMP_RET_ALLOW {
					t.Fatalf("x32 syscall %d: verdict %#x, want allow", nr, v)
				}
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("verdicts (-want +got):\n%s", diff)
			}
		})
	}
}

func TestBuildFilterRejects(t *testing.T) {
	if _, err := buildFilter([]int{1}, []int{1}); err == nil {
		t.Error("a syscall both notified and traced was accepted")
	}
	if _, err := buildFilter([]int{-1}, nil); err == nil {
		t.Error("a negative syscall number was accepted")
	}
}
