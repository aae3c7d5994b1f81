package bpf

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// fakeProber answers the attach-method probes: err for fentry, rawErr for
// the tp_btf sys_enter/sys_exit pair.
type fakeProber struct{ err, rawErr error }

func (p fakeProber) Fentry(string) error { return p.err }
func (p fakeProber) RawSyscalls() error  { return p.rawErr }

func tcpAttachments(plans []hookPlan) []Attachment {
	var out []Attachment
	for _, p := range plans {
		if p.hook == "tcp_sendmsg" || p.hook == "tcp_recvmsg" {
			out = append(out, p.attachment())
		}
	}
	return out
}

func TestPlanHooksSelection(t *testing.T) {
	eperm := errors.New("fentry/tcp_sendmsg: operation not permitted")
	tests := []struct {
		name   string
		prober prober
		want   []Attachment
		progs  []string // TCP programs kept in the spec
	}{
		{
			name:   "fentry works",
			prober: fakeProber{},
			want: []Attachment{
				{Hook: "tcp_sendmsg", Method: "fentry/tcp_sendmsg+fexit/tcp_sendmsg"},
				{Hook: "tcp_recvmsg", Method: "fentry/tcp_recvmsg+fexit/tcp_recvmsg"},
			},
			progs: []string{"fentry_tcp_sendmsg", "fexit_tcp_sendmsg", "fentry_tcp_recvmsg", "fexit_tcp_recvmsg"},
		},
		{
			name:   "fentry rejected",
			prober: fakeProber{err: eperm},
			want: []Attachment{
				{Hook: "tcp_sendmsg", Method: "tp_btf/sock_send_length", Fallback: true, Reason: eperm.Error()},
				{Hook: "tcp_recvmsg", Method: "tp_btf/sock_recv_length", Fallback: true, Reason: eperm.Error()},
			},
			progs: []string{"tp_sock_send", "tp_sock_recv"},
		},
	}
	allTCP := []string{"fentry_tcp_sendmsg", "fexit_tcp_sendmsg", "fentry_tcp_recvmsg", "fexit_tcp_recvmsg", "tp_sock_send", "tp_sock_recv"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plans := planHooks(tt.prober)
			if diff := cmp.Diff(tt.want, tcpAttachments(plans)); diff != "" {
				t.Errorf("TCP attachments (-want +got):\n%s", diff)
			}
			spec, err := loadBpf()
			if err != nil {
				t.Fatal(err)
			}
			pruneSpec(spec, plans)
			var got []string
			for _, name := range allTCP {
				if spec.Programs[name] != nil {
					got = append(got, name)
				}
			}
			if diff := cmp.Diff(tt.progs, got); diff != "" {
				t.Errorf("TCP programs left in spec (-want +got):\n%s", diff)
			}
			// Every non-TCP hook keeps its programs.
			for _, name := range []string{"sys_enter_rw", "sys_exit_rw", "on_sched_switch", "on_page_fault_user"} {
				if spec.Programs[name] == nil {
					t.Errorf("program %s pruned", name)
				}
			}
		})
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
	r := openRecorder(t, Options{PIDs: []uint32{1}})
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
	for _, hook := range []string{"read", "write", "pread64", "pwrite64", "readv", "writev", "sched_switch", "sched_wakeup", "sched_wakeup_new", "page_fault_user", "page_fault_kernel"} {
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
	if !errors.Is(err, unix.EPERM) && !errors.Is(err, unix.EINVAL) {
		t.Logf("unexpected error kind (still a rejection): %v", err)
	}
	t.Logf("forced fentry rejected as expected: %v", err)
	// The fallback still opens afterwards: nothing leaked from the failed attempt.
	r2 := openRecorder(t, Options{PIDs: []uint32{1}})
	if err := r2.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r2.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestCloseWithoutRun(t *testing.T) {
	needKernel(t)
	r := openRecorder(t, Options{PIDs: []uint32{1}})
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
