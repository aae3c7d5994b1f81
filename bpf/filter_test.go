package bpf

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kprobe/kprobe/bpf/bpftest"
)

// runDD runs dd doing n 1-byte reads and writes, and returns its pid.
func runDD(t *testing.T, n int) uint32 {
	t.Helper()
	cmd := exec.Command("dd", "if=/dev/zero", "of=/dev/null", "bs=1", "count="+strconv.Itoa(n), "status=none")
	if err := cmd.Run(); err != nil {
		t.Fatalf("dd: %v", err)
	}
	return uint32(cmd.Process.Pid)
}

func TestFilterPID(t *testing.T) {
	needKernel(t)
	w := bpftest.Start(t, "writes", "100")
	r := openProbes(t, Options{PIDs: []uint32{w.Info.PID}})
	s := startSession(r)
	ddPID := runDD(t, 200)
	w.Run(t)
	evs := s.stop(t)

	writes := 0
	for _, e := range evs {
		if e.PID != w.Info.PID {
			t.Fatalf("event from pid %d (dd is %d) with pid filter %d: %+v", e.PID, ddPID, w.Info.PID, e)
		}
		if e.Type == EventWrite && e.FD == w.Info.FD {
			writes++
		}
	}
	if writes != 100 {
		t.Errorf("writes: got %d, want 100", writes)
	}
}

func TestFilterComm(t *testing.T) {
	needKernel(t)
	const n = 300
	w := bpftest.Start(t, "writes", "50")
	r := openProbes(t, Options{Comms: []string{"dd"}})
	s := startSession(r)
	ddPID := runDD(t, n)
	w.Run(t)
	evs := s.stop(t)

	var reads, writes int
	for _, e := range evs {
		if e.Comm != "dd" {
			t.Fatalf("event with comm %q under comm filter dd: %+v", e.Comm, e)
		}
		if e.PID != ddPID {
			continue
		}
		switch {
		case e.Type == EventRead && e.Ret == 1:
			reads++
		case e.Type == EventWrite && e.Ret == 1:
			writes++
		}
	}
	if reads != n || writes != n {
		t.Errorf("dd 1-byte reads/writes: got %d/%d, want %d/%d", reads, writes, n, n)
	}
}

func TestFilterCgroup(t *testing.T) {
	needKernel(t)
	root, err := cgroup2Mount()
	if err != nil {
		t.Skipf("no cgroup v2 hierarchy: %v", err)
	}
	dir := filepath.Join(root, fmt.Sprintf("kprobe-bpf-test-%d", os.Getpid()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Skipf("cannot create a cgroup: %v", err)
	}
	t.Cleanup(func() { os.Remove(dir) })

	w := bpftest.Start(t, "writes", "100")
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(int(w.Info.PID))), 0); err != nil {
		t.Skipf("cannot move a process into cgroup %s: %v", dir, err)
	}
	id, err := CgroupID(dir)
	if err != nil {
		t.Fatal(err)
	}
	r := openProbes(t, Options{CgroupPaths: []string{dir}})
	s := startSession(r)
	runDD(t, 100) // outside the cgroup
	w.Run(t)
	evs := s.stop(t)

	writes := 0
	for _, e := range evs {
		if e.CgroupID != id || e.PID != w.Info.PID {
			t.Fatalf("event from pid %d cgroup %d under cgroup filter %d: %+v", e.PID, e.CgroupID, id, e)
		}
		if e.Type == EventWrite && e.FD == w.Info.FD {
			writes++
		}
	}
	if writes != 100 {
		t.Errorf("writes in cgroup: got %d, want 100", writes)
	}
}

func TestCgroupID(t *testing.T) {
	root, err := cgroup2Mount()
	if err != nil {
		t.Skipf("no cgroup v2 hierarchy: %v", err)
	}
	id, err := CgroupID(root)
	if err != nil {
		t.Fatal(err)
	}
	if id != 1 {
		// The root cgroup's kernfs id is 1 on 64-bit kernels.
		t.Errorf("root cgroup id %d, want 1", id)
	}
	rel, err := CgroupID(".")
	if err != nil || rel != id {
		t.Errorf("relative path: id %d err %v, want %d", rel, err, id)
	}
	if _, err := CgroupID(t.TempDir()); err == nil {
		t.Error("CgroupID of a non-cgroup directory succeeded")
	}
}

func TestAddPID(t *testing.T) {
	needKernel(t)
	w := bpftest.Start(t, "writes", "100")
	// Start with a filter that matches nothing, as when launching a command.
	r := openProbes(t, Options{PIDs: []uint32{1 << 30}})
	s := startSession(r)
	if err := r.AddPID(w.Info.PID); err != nil {
		t.Fatal(err)
	}
	w.Run(t)
	evs := s.stop(t)
	writes := 0
	for _, e := range evs {
		if e.PID != w.Info.PID {
			t.Fatalf("unexpected event from pid %d: %+v", e.PID, e)
		}
		if e.Type == EventWrite && e.FD == w.Info.FD {
			writes++
		}
	}
	if writes != 100 {
		t.Errorf("writes after AddPID: got %d, want 100", writes)
	}
}

func TestSelfExcluded(t *testing.T) {
	needKernel(t)
	w := bpftest.Start(t, "writes", "10")
	r := openProbes(t, Options{}) // no filters: everything but the recorder itself
	s := startSession(r)
	f, err := os.CreateTemp(t.TempDir(), "self")
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		f.Write([]byte("x"))
	}
	f.Close()
	w.Run(t)
	evs := s.stop(t)
	self, seenWorkload := uint32(os.Getpid()), false
	for _, e := range evs {
		if e.PID == self {
			t.Fatalf("recorder's own event recorded: %+v", e)
		}
		seenWorkload = seenWorkload || e.PID == w.Info.PID
	}
	if !seenWorkload {
		t.Error("unfiltered recorder saw nothing from the workload")
	}
}

// TestFilterCommSelectsProcess: --comm names a process, and every thread of
// it is recorded: threads started after the recorder, threads that give
// themselves other names (pthread_setname_np), and a process that takes the
// name at exec. The workload makes k writes under its own name (not
// selected), then execs a copy of itself named kp-mtsel, whose main thread
// and n threads named worker-0.. make k writes each.
func TestFilterCommSelectsProcess(t *testing.T) {
	needKernel(t)
	const n, k = 4, 200
	const name = "kp-mtsel"
	bin, err := os.ReadFile(bpftest.Binary(t))
	if err != nil {
		t.Fatal(err)
	}
	renamed := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(renamed, bin, 0o700); err != nil {
		t.Fatal(err)
	}
	w := bpftest.Start(t, "exec", strconv.Itoa(k), renamed, "threads", strconv.Itoa(n), strconv.Itoa(k))
	r := openProbes(t, Options{Comms: []string{name}})
	s := startSession(r)
	w.Go(t)                // k writes as "workload", then exec
	after := w.ReadInfo(t) // printed by kp-mtsel
	w.Run(t)               // the threads' writes
	evs := s.stop(t)

	if after.PID != w.Info.PID {
		t.Fatalf("pid %d after exec, %d before", after.PID, w.Info.PID)
	}
	writes := map[string]int{} // by thread name
	tids := map[uint32]bool{}
	for _, e := range evs {
		if e.PID != w.Info.PID {
			t.Fatalf("event of pid %d (comm %q) under --comm %s: %+v", e.PID, e.Comm, name, e)
		}
		if e.Type != EventWrite || e.Ret != 1 {
			continue
		}
		switch {
		case e.Comm == "workload": // before exec: not selected
			t.Errorf("write before exec recorded: %+v", e)
		case e.FD == after.FD:
			writes[e.Comm]++
			tids[e.TID] = true
		}
	}
	want := map[string]int{name: k}
	for i := range n {
		want["worker-"+strconv.Itoa(i)] = k
	}
	if diff := cmp.Diff(want, writes); diff != "" {
		t.Errorf("writes by thread name (-want +got):\n%s", diff)
	}
	if len(tids) != n+1 {
		t.Errorf("writes from %d threads, want %d", len(tids), n+1)
	}
}

// TestFilterPIDFollowsChildren: a selected process's children, started after the
// recorder, are recorded too (a shell running a command, a server's workers); a process
// the test starts itself is not; a child that exited leaves the selection.
func TestFilterPIDFollowsChildren(t *testing.T) {
	needKernel(t)
	sh := exec.Command("sh", "-c", "read go; dd if=/dev/zero of=/dev/null bs=1 count=100 status=none")
	stdin, err := sh.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sh.Start(); err != nil {
		t.Fatal(err)
	}
	shPID := uint32(sh.Process.Pid)
	r := openProbes(t, Options{PIDs: []uint32{shPID}})
	s := startSession(r)
	outside := runDD(t, 50)
	if _, err := stdin.Write([]byte("go\n")); err != nil {
		t.Fatal(err)
	}
	if err := sh.Wait(); err != nil {
		t.Fatalf("sh: %v", err)
	}
	evs := s.stop(t)

	writes := map[uint32]int{}
	var child uint32
	for _, e := range evs {
		if e.PID == outside {
			t.Fatalf("event from dd %d, which the selected shell did not start: %+v", outside, e)
		}
		if e.Type == EventWrite && e.Comm == "dd" {
			writes[e.PID]++
			child = e.PID
		}
	}
	if diff := cmp.Diff(map[uint32]int{child: 100}, writes); diff != "" || child == shPID {
		t.Errorf("dd's writes by pid, dd started by the selected shell %d (-want +got):\n%s", shPID, diff)
	}
	var one uint8
	if err := r.maps.FilterPids.Lookup(child, &one); err == nil {
		t.Errorf("dd (pid %d) exited but is still selected", child)
	}
	if err := r.maps.FilterPids.Lookup(shPID, &one); err == nil {
		t.Errorf("the shell (pid %d) exited but is still selected", shPID)
	}
}
