package bpf

import (
	"os"
	"sort"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

func TestZZExplore(t *testing.T) {
	needKernel(t)
	mode := os.Getenv("ZZ_MODE")
	fd, _ := unix.Open("/dev/null", unix.O_WRONLY, 0)
	defer unix.Close(fd)
	one := []byte{'x'}
	const n = 1000000
	loop := func() time.Duration {
		t0 := time.Now()
		for i := 0; i < n; i++ {
			unix.Write(fd, one)
		}
		return time.Since(t0) / n
	}
	t.Logf("baseline %v", loop())
	opts := Options{PIDs: []uint32{uint32(os.Getpid())}, RingBytes: 256 << 20, QueueLen: 8192}
	if mode == "out" {
		opts.PIDs = []uint32{0x7ffffff0}
	}
	r := openRecorder(t, opts)
	if mode == "out" {
		r.cfg.SelfTgid = 0
		r.cfgVar.Set(r.cfg)
	}
	var d *drainer
	if os.Getenv("ZZ_DRAIN") != "" {
		d = startDrainer(r)
	}
	for i := 0; i < 4; i++ {
		t.Logf("%s %v", mode, loop())
	}
	if os.Getenv("ZZ_STATS") != "" {
		c, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
		if err != nil {
			t.Fatal(err)
		}
		before := map[string]*ebpf.ProgramStats{}
		for name, p := range r.coll.Programs {
			before[name], _ = p.Stats()
		}
		t.Logf("%s with stats %v", mode, loop())
		c.Close()
		var names []string
		for name := range r.coll.Programs {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			s, _ := r.coll.Programs[name].Stats()
			b := before[name]
			cnt := s.RunCount - b.RunCount
			if cnt == 0 {
				continue
			}
			t.Logf("  %-22s runs %8d  avg %6.1f ns", name, cnt, float64(s.Runtime-b.Runtime)/float64(cnt))
		}
	}
	if d != nil {
		d.stop()
	}
	t.Logf("stats %+v", r.Stats())
}
