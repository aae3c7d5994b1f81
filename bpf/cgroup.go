package bpf

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// CgroupID resolves a cgroup v2 directory to the id that
// bpf_get_current_cgroup_id reports: the inode number of the directory.
// A relative path is taken under the cgroup v2 mount point.
func CgroupID(path string) (uint64, error) {
	if !filepath.IsAbs(path) {
		root, err := cgroup2Mount()
		if err != nil {
			return 0, err
		}
		path = filepath.Join(root, path)
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(path, &fs); err != nil {
		return 0, fmt.Errorf("resolving cgroup %s: %w", path, err)
	}
	if fs.Type != unix.CGROUP2_SUPER_MAGIC {
		return 0, fmt.Errorf("resolving cgroup %s: not on a cgroup v2 filesystem (BPF cgroup ids come from the v2 hierarchy)", path)
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, fmt.Errorf("resolving cgroup %s: %w", path, err)
	}
	return st.Ino, nil
}

// cgroup2Mount finds where the cgroup v2 hierarchy is mounted
// (/sys/fs/cgroup, or /sys/fs/cgroup/unified on hybrid systems).
func cgroup2Mount() (string, error) {
	f, err := os.Open("/proc/self/mounts")
	if err != nil {
		return "", fmt.Errorf("finding cgroup2 mount: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 3 && fields[2] == "cgroup2" {
			return fields[1], nil
		}
	}
	return "", fmt.Errorf("finding cgroup2 mount: none in /proc/self/mounts: mount it (mount -t cgroup2 none /sys/fs/cgroup)")
}
