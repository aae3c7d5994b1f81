package bpf

import (
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// BenchmarkSyscallTax is what the recorder costs every process it does not
// record (the node-wide tax): the raw sys_enter/sys_exit programs run for
// every syscall of every process on the node. Per syscall:
//
//   - baseline: nothing attached.
//   - empty-hooks: two empty tp_btf programs on sys_enter/sys_exit, the floor
//     of this attach method (the kernel's syscall tracepoint slow path and
//     the BPF trampoline), which no program body can go below.
//   - filtered-out: the recorder with a pid filter that rejects this process.
//
// getpid is a syscall the recorder never records; write is one it records
// for selected processes. Each attached variant also reports bpf-ns/op: the
// run time of the programs themselves per syscall, from
// kernel.bpf_stats_enabled, measured after the timed loop (collecting stats
// costs time of its own).
func BenchmarkSyscallTax(b *testing.B) {
	fd, err := unix.Open("/dev/null", unix.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer unix.Close(fd)
	one := []byte{'x'}
	calls := []struct {
		name string
		call func()
	}{
		{"getpid", func() { unix.Getpid() }},
		{"write", func() { unix.Write(fd, one) }},
	}
	for _, c := range calls {
		b.Run(c.name+"/baseline", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				c.call()
			}
		})
		b.Run(c.name+"/empty-hooks", func(b *testing.B) {
			needKernel(b)
			progs := attachEmptySyscallHooks(b)
			b.ReportAllocs()
			for b.Loop() {
				c.call()
			}
			b.StopTimer()
			reportProgTime(b, progs, c.call)
		})
		b.Run(c.name+"/filtered-out", func(b *testing.B) {
			needKernel(b)
			r := openFilteredOut(b)
			d := startDrainer(r)
			b.ReportAllocs()
			for b.Loop() {
				c.call()
			}
			b.StopTimer()
			reportProgTime(b, syscallPrograms(b, r), c.call)
			d.stop()
			b.ReportMetric(float64(r.Stats().ReceivedTotal), "events")
		})
	}
}

// openFilteredOut opens a recorder whose pid filter holds only an unused
// pid, with the self-exclusion off, so this process is rejected through the
// filter as every other process on the node is.
func openFilteredOut(tb testing.TB) *Probes {
	tb.Helper()
	r := openProbes(tb, Options{PIDs: []uint32{1 << 30}})
	r.mu.Lock()
	defer r.mu.Unlock()
	cfg := r.cfg
	cfg.SelfTgid = 0
	if err := r.setConfig(cfg); err != nil {
		tb.Fatal(err)
	}
	return r
}

// attachEmptySyscallHooks attaches programs that return at once to the
// sys_enter and sys_exit raw tracepoints.
func attachEmptySyscallHooks(tb testing.TB) []*ebpf.Program {
	tb.Helper()
	var progs []*ebpf.Program
	for _, tp := range []string{"sys_enter", "sys_exit"} {
		prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
			Name: "empty_" + tp, Type: ebpf.Tracing, AttachType: ebpf.AttachTraceRawTp, AttachTo: tp, License: "GPL",
			Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()},
		})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { prog.Close() })
		l, err := link.AttachTracing(link.TracingOptions{Program: prog})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { l.Close() })
		progs = append(progs, prog)
	}
	return progs
}

// reportProgTime runs call n times with kernel.bpf_stats_enabled on and
// reports the programs' own run time per call. The programs also run for
// every other process's syscalls meanwhile, so this is an upper bound.
func reportProgTime(b *testing.B, progs []*ebpf.Program, call func()) {
	b.Helper()
	const n = 200000
	stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		b.Logf("bpf stats unavailable: %v", err)
		return
	}
	defer stats.Close()
	before := progRuntime(b, progs)
	for range n {
		call()
	}
	after := progRuntime(b, progs)
	b.ReportMetric(float64(after-before)/n, "bpf-ns/op")
}

func progRuntime(b *testing.B, progs []*ebpf.Program) time.Duration {
	b.Helper()
	var total time.Duration
	for _, p := range progs {
		st, err := p.Stats()
		if err != nil {
			b.Fatal(err)
		}
		total += st.Runtime
	}
	return total
}

// syscallPrograms are the recorder's raw sys_enter/sys_exit programs.
func syscallPrograms(tb testing.TB, p *Probes) []*ebpf.Program {
	tb.Helper()
	return []*ebpf.Program{
		loadedProgram(tb, p, func(s *bpfProgramSpecs) *ebpf.ProgramSpec { return s.SysEnterRw }),
		loadedProgram(tb, p, func(s *bpfProgramSpecs) *ebpf.ProgramSpec { return s.SysExitRw }),
	}
}
