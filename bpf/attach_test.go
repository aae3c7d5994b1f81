package bpf

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// fakeProber answers the attach-method probes: err for fentry, rawErr for
// the tp_btf sys_enter/sys_exit pair, and the kernel functions' prototypes
// (this kernel's when protos is nil).
type fakeProber struct {
	err, rawErr error
	protos      map[string]*btf.FuncProto
}

func (p fakeProber) Fentry(string) error { return p.err }
func (p fakeProber) RawSyscalls() error  { return p.rawErr }

func (p fakeProber) FuncProto(fn string) (*btf.FuncProto, error) {
	if p.protos == nil {
		return kernelProber{}.FuncProto(fn)
	}
	if proto := p.protos[fn]; proto != nil {
		return proto, nil
	}
	return nil, fmt.Errorf("%s: %w", fn, btf.ErrNotFound)
}

func tcpAttachments(plans []hookPlan) []Attachment {
	var out []Attachment
	for _, p := range plans {
		if p.hook == "tcp_sendmsg" || p.hook == "tcp_recvmsg" {
			out = append(out, p.attachment())
		}
	}
	return out
}

func testSpecs(t *testing.T) (*ebpf.CollectionSpec, *bpfProgramSpecs) {
	t.Helper()
	spec, err := loadBpf()
	if err != nil {
		t.Fatal(err)
	}
	var specs bpfSpecs
	if err := spec.Assign(&specs); err != nil {
		t.Fatal(err)
	}
	return spec, &specs.bpfProgramSpecs
}

// programsLeft names the programs of s that are still in spec, in the
// order given.
func programsLeft(spec *ebpf.CollectionSpec, progs ...*ebpf.ProgramSpec) []string {
	var left []string
	for _, ps := range progs {
		if spec.Programs[ps.Name] == ps {
			left = append(left, ps.Name)
		}
	}
	return left
}

// Prototypes of tcp_sendmsg and tcp_recvmsg as kernels have declared them.
var (
	sockPtr    = &btf.Pointer{Target: &btf.Struct{Name: "sock"}}
	msgPtr     = &btf.Pointer{Target: &btf.Struct{Name: "msghdr"}}
	intType    = &btf.Int{Name: "int", Size: 4, Encoding: btf.Signed}
	sizeT      = &btf.Typedef{Name: "size_t", Type: &btf.Int{Name: "long unsigned int", Size: 8}}
	intPtr     = &btf.Pointer{Target: intType}
	sendmsg    = &btf.FuncProto{Return: intType, Params: []btf.FuncParam{{Name: "sk", Type: sockPtr}, {Name: "msg", Type: msgPtr}, {Name: "size", Type: sizeT}}}
	recvmsg518 = &btf.FuncProto{Return: intType, Params: []btf.FuncParam{
		{Name: "sk", Type: sockPtr}, {Name: "msg", Type: msgPtr}, {Name: "len", Type: sizeT},
		{Name: "nonblock", Type: intType}, {Name: "flags", Type: intType}, {Name: "addr_len", Type: intPtr}}}
	recvmsg519 = &btf.FuncProto{Return: intType, Params: []btf.FuncParam{
		{Name: "sk", Type: sockPtr}, {Name: "msg", Type: msgPtr}, {Name: "len", Type: sizeT},
		{Name: "flags", Type: intType}, {Name: "addr_len", Type: intPtr}}}
	recvmsgNoAddrLen = &btf.FuncProto{Return: intType, Params: []btf.FuncParam{
		{Name: "sk", Type: sockPtr}, {Name: "msg", Type: msgPtr}, {Name: "len", Type: sizeT},
		{Name: "flags", Type: intType}}}
)

func TestPlanHooksSelection(t *testing.T) {
	eperm := errors.New("fentry/tcp_sendmsg: operation not permitted")
	protos := func(recv *btf.FuncProto) map[string]*btf.FuncProto {
		return map[string]*btf.FuncProto{"tcp_sendmsg": sendmsg, "tcp_recvmsg": recv}
	}
	tests := []struct {
		name   string
		prober prober
		want   []Attachment
		progs  []string // TCP programs kept in the spec
	}{
		{
			name:   "fentry works, tcp_recvmsg without addr_len",
			prober: fakeProber{protos: protos(recvmsgNoAddrLen)},
			want: []Attachment{
				{Hook: "tcp_sendmsg", Method: "fentry/tcp_sendmsg+fexit/tcp_sendmsg"},
				{Hook: "tcp_recvmsg", Method: "fentry/tcp_recvmsg+fexit/tcp_recvmsg"},
			},
			progs: []string{"fentry_tcp_sendmsg", "fexit_tcp_sendmsg", "fentry_tcp_recvmsg", "fexit_tcp_recvmsg4"},
		},
		{
			name:   "fentry works, Linux 5.19 tcp_recvmsg",
			prober: fakeProber{protos: protos(recvmsg519)},
			want: []Attachment{
				{Hook: "tcp_sendmsg", Method: "fentry/tcp_sendmsg+fexit/tcp_sendmsg"},
				{Hook: "tcp_recvmsg", Method: "fentry/tcp_recvmsg+fexit/tcp_recvmsg"},
			},
			progs: []string{"fentry_tcp_sendmsg", "fexit_tcp_sendmsg", "fentry_tcp_recvmsg", "fexit_tcp_recvmsg5"},
		},
		{
			name:   "fentry works, Linux 5.18 tcp_recvmsg",
			prober: fakeProber{protos: protos(recvmsg518)},
			want: []Attachment{
				{Hook: "tcp_sendmsg", Method: "fentry/tcp_sendmsg+fexit/tcp_sendmsg"},
				{Hook: "tcp_recvmsg", Method: "fentry/tcp_recvmsg+fexit/tcp_recvmsg"},
			},
			progs: []string{"fentry_tcp_sendmsg", "fexit_tcp_sendmsg", "fentry_tcp_recvmsg", "fexit_tcp_recvmsg6"},
		},
		{
			name:   "fentry works, unknown tcp_recvmsg prototype",
			prober: fakeProber{protos: protos(&btf.FuncProto{Return: intType, Params: append(slices.Clone(recvmsg518.Params), btf.FuncParam{Name: "extra", Type: intType})})},
			want: []Attachment{
				{Hook: "tcp_sendmsg", Method: "fentry/tcp_sendmsg+fexit/tcp_sendmsg"},
				{Hook: "tcp_recvmsg", Method: "tp_btf/sock_recv_length", Fallback: true,
					Reason: "tcp_recvmsg has 7 parameters in this kernel's BTF: no fexit program for that prototype"},
			},
			progs: []string{"fentry_tcp_sendmsg", "fexit_tcp_sendmsg", "tp_sock_recv"},
		},
		{
			name:   "fentry rejected",
			prober: fakeProber{err: eperm, protos: protos(recvmsgNoAddrLen)},
			want: []Attachment{
				{Hook: "tcp_sendmsg", Method: "tp_btf/sock_send_length", Fallback: true, Reason: eperm.Error()},
				{Hook: "tcp_recvmsg", Method: "tp_btf/sock_recv_length", Fallback: true, Reason: eperm.Error()},
			},
			progs: []string{"tp_sock_send", "tp_sock_recv"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec, s := testSpecs(t)
			plans := planHooks(tt.prober, s)
			if diff := cmp.Diff(tt.want, tcpAttachments(plans)); diff != "" {
				t.Errorf("TCP attachments (-want +got):\n%s", diff)
			}
			pruneSpec(spec, plans)
			allTCP := []*ebpf.ProgramSpec{
				s.FentryTcpSendmsg, s.FexitTcpSendmsg, s.FentryTcpRecvmsg,
				s.FexitTcpRecvmsg4, s.FexitTcpRecvmsg5, s.FexitTcpRecvmsg6, s.TpSockSend, s.TpSockRecv,
			}
			if diff := cmp.Diff(tt.progs, programsLeft(spec, allTCP...)); diff != "" {
				t.Errorf("TCP programs left in spec (-want +got):\n%s", diff)
			}
			// Every non-TCP hook keeps its programs.
			others := []*ebpf.ProgramSpec{s.SysEnterRw, s.SysExitRw, s.OnSchedSwitch, s.OnPageFaultUser}
			if got := programsLeft(spec, others...); len(got) != len(others) {
				t.Errorf("non-TCP programs left %v, want all of %d", got, len(others))
			}
		})
	}
}

// TestFexitForRejectsOddPrototypes: a prototype the fexit programs were not
// written for is refused, with a reason, rather than read at a wrong slot.
func TestFexitForRejectsOddPrototypes(t *testing.T) {
	_, s := testSpecs(t)
	variants := map[int]*ebpf.ProgramSpec{4: s.FexitTcpRecvmsg4}
	tests := []struct {
		name  string
		proto *btf.FuncProto
		want  string
	}{
		{"void return", &btf.FuncProto{Return: &btf.Void{}, Params: recvmsgNoAddrLen.Params}, "tcp_recvmsg returns"},
		{"no parameters", &btf.FuncProto{Return: intType}, "tcp_recvmsg has no parameters"},
		{"first parameter not a pointer", &btf.FuncProto{Return: intType, Params: []btf.FuncParam{{Name: "x", Type: intType}, {}, {}, {}}}, `first parameter "x" is not a pointer`},
		{"other arity", recvmsg519, "tcp_recvmsg has 5 parameters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prog, err := fexitFor("tcp_recvmsg", tt.proto, variants)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("fexitFor = %v, %v; want an error containing %q", prog, err, tt.want)
			}
		})
	}
	if prog, err := fexitFor("tcp_recvmsg", recvmsgNoAddrLen, variants); err != nil || prog != s.FexitTcpRecvmsg4 {
		t.Errorf("fexitFor(4 parameters) = %v, %v; want fexit_tcp_recvmsg4", prog, err)
	}
}

// TestFexitForThisKernel reads this kernel's prototypes: the kernel the
// project builds on must have an fexit program for each TCP hook, so that
// fentry, where a kernel allows it, is not refused for want of one.
func TestFexitForThisKernel(t *testing.T) {
	if _, err := os.Stat(btfPath); err != nil {
		t.Skipf("no kernel BTF: %v", err)
	}
	_, s := testSpecs(t)
	for _, h := range tcpHooks(s) {
		proto, err := kernelProber{}.FuncProto(h.hook)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fexitFor(h.hook, proto, h.fexit); err != nil {
			t.Errorf("%s: %v", h.hook, err)
		}
	}
}

// TestAttachMethodOnThisKernel exercises the preferred path for real: on
// kernels that reject fentry (as the project's build machines do) it must be
// rejected and the sock tracepoints chosen; elsewhere fentry is chosen.
func TestAttachMethodOnThisKernel(t *testing.T) {
	needKernel(t)
	feats, err := CheckFeatures()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("features: %+v", feats)
	r := openProbes(t, Options{PIDs: []uint32{1}})
	got := map[string]Attachment{}
	for _, a := range r.Attachments() {
		got[a.Hook] = a
	}
	for _, hook := range []string{"tcp_sendmsg", "tcp_recvmsg"} {
		a := got[hook]
		if feats.Fentry {
			if a.Fallback || a.Method != "fentry/"+hook+"+fexit/"+hook {
				t.Errorf("%s: fentry works here but got %+v", hook, a)
			}
			continue
		}
		if !a.Fallback || a.Reason == "" {
			t.Errorf("%s: fentry rejected (%v) but got %+v", hook, feats.FentryErr, a)
		}
	}
	if !feats.Fentry && got["tcp_sendmsg"].Method != "tp_btf/sock_send_length" {
		t.Errorf("tcp_sendmsg method %q, want tp_btf/sock_send_length", got["tcp_sendmsg"].Method)
	}
	for _, hook := range []string{"read", "write", "pread64", "pwrite64", "readv", "writev", "sched_switch", "sched_waking", "sched_wakeup_new", "page_fault_user", "page_fault_kernel"} {
		if _, ok := got[hook]; !ok {
			t.Errorf("no attachment for %s", hook)
		}
	}
}

// TestForcedFentry loads the fentry programs as if the probe had said yes:
// where the kernel refuses them, Open must fail cleanly with a one-line error
// (and release what it acquired); where it accepts them, they must work.
func TestForcedFentry(t *testing.T) {
	needKernel(t)
	feats, err := CheckFeatures()
	if err != nil {
		t.Fatal(err)
	}
	r, err := open(context.Background(), Options{PIDs: []uint32{1}}, fakeProber{})
	if feats.Fentry {
		if err != nil {
			t.Fatalf("fentry supported but Open failed: %v", err)
		}
		r.Close()
		return
	}
	if err == nil {
		r.Close()
		t.Fatal("fentry rejected by the probe but loading the fentry programs succeeded")
	}
	// The rejection is the kernel's (EPERM under lockdown, EINVAL without
	// trampolines), said in one line.
	if !errors.Is(err, unix.EPERM) && !errors.Is(err, unix.EINVAL) {
		t.Errorf("forced fentry failed, but not as a kernel rejection: %v", err)
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("error spans several lines: %q", err)
	}
	// The fallback still opens afterwards: nothing leaked from the failed attempt.
	r2 := openProbes(t, Options{PIDs: []uint32{1}})
	if err := r2.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r2.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestCloseWithoutRun(t *testing.T) {
	needKernel(t)
	r := openProbes(t, Options{PIDs: []uint32{1}})
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := <-r.Batches(); ok {
		t.Fatal("Batches not closed after Close without Run")
	}
	if err := r.Run(context.Background()); err == nil {
		t.Fatal("Run after Close succeeded")
	}
}
