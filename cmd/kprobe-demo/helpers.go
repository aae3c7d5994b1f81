package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The demo's other processes are this same program re-executed in a role (the
// environment variable says which): the clearing gateway, the slow bank behind it, a CPU
// hog and the ledger's reconciler. Each runs under its own name (a symlink), so an SRE
// sees "clearing-gw" and "bank-sim" rather than four copies of kprobe-demo.
const roleEnv = "KPROBE_DEMO_ROLE"

// Roles and the command names they run under.
const (
	roleGateway = "clearing-gw"
	roleBank    = "bank-sim"
	roleHog     = "cpu-hog"
	roleLocker  = "ledger-recon"
)

// runRole runs the process's role, if it has one.
func runRole(ctx context.Context, role string, args []string, stdin io.Reader, stdout io.Writer) (bool, error) {
	switch role {
	case "":
		return false, nil
	case roleGateway:
		return true, serveGateway(ctx, args, stdout)
	case roleBank:
		return true, serveBank(ctx, args, stdout)
	case roleHog:
		return true, serveHog(ctx, args, stdin, stdout)
	case roleLocker:
		return true, serveLocker(ctx, args, stdin, stdout)
	}
	return true, fmt.Errorf("unknown %s %q", roleEnv, role)
}

// helper is one started helper process, talked to over its stdin and stdout.
type helper struct {
	name  string
	cmd   *exec.Cmd
	in    io.WriteCloser
	lines chan string // its stdout, line by line
	wg    sync.WaitGroup
}

// helpers starts and stops the demo's other processes.
type helpers struct {
	dir  string // the symlinks giving each role its name
	self string
	all  []*helper
}

func newHelpers() (*helpers, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding own executable: %w", err)
	}
	dir, err := os.MkdirTemp("", "kprobe-demo-bin-")
	if err != nil {
		return nil, fmt.Errorf("creating helper directory: %w", err)
	}
	return &helpers{dir: dir, self: self}, nil
}

// start runs a role with args and waits for its first line (its "ready" report).
func (h *helpers) start(ctx context.Context, role string, args ...string) (*helper, string, error) {
	link := filepath.Join(h.dir, role)
	if err := os.Symlink(h.self, link); err != nil && !os.IsExist(err) {
		return nil, "", fmt.Errorf("naming the %s process: %w", role, err)
	}
	cmd := exec.Command(link, args...)
	cmd.Env = append(os.Environ(), roleEnv+"="+role)
	cmd.Stderr = os.Stderr
	// Helpers end with the demo even if it is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, "", fmt.Errorf("%s stdin: %w", role, err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", fmt.Errorf("%s stdout: %w", role, err)
	}
	if err := cmd.Start(); err != nil {
		return nil, "", fmt.Errorf("starting %s: %w", role, err)
	}
	p := &helper{name: role, cmd: cmd, in: in, lines: make(chan string, 16)}
	h.all = append(h.all, p)
	p.wg.Go(func() {
		defer close(p.lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
	})
	first, err := p.next(ctx, 10*time.Second)
	if err != nil {
		return nil, "", err
	}
	return p, first, nil
}

// next waits for the helper's next line.
func (p *helper) next(ctx context.Context, timeout time.Duration) (string, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case l, ok := <-p.lines:
		if !ok {
			return "", fmt.Errorf("%s exited", p.name)
		}
		return l, nil
	case <-t.C:
		return "", fmt.Errorf("%s did not answer within %v", p.name, timeout)
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// send writes one command line to the helper.
func (p *helper) send(format string, a ...any) error {
	if _, err := fmt.Fprintf(p.in, format+"\n", a...); err != nil {
		return fmt.Errorf("telling %s: %w", p.name, err)
	}
	return nil
}

// stop ends every helper: stdin closes (they exit on EOF), then SIGTERM.
func (h *helpers) stop() {
	for _, p := range h.all {
		p.in.Close()
		p.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, p := range h.all {
		for range p.lines {
		}
		p.wg.Wait()
		p.cmd.Wait()
	}
	os.RemoveAll(h.dir)
}

// field returns the value of "key=value" in a helper's line.
func field(line, key string) string {
	for _, f := range strings.Fields(line) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			return v
		}
	}
	return ""
}

// obey runs do for each "VERB DURATION" line on stdin, until stdin closes or ctx ends.
func obey(ctx context.Context, stdin io.Reader, role, verb string, do func(time.Duration) error) error {
	lines := make(chan string)
	ctx = waitStdin(ctx, stdin, lines)
	for {
		select {
		case <-ctx.Done():
			return nil
		case l := <-lines:
			d, err := time.ParseDuration(strings.TrimPrefix(l, verb+" "))
			if err != nil {
				return fmt.Errorf("%s: bad command %q (want %q and a duration)", role, l, verb)
			}
			if err := do(d); err != nil {
				return err
			}
		}
	}
}

// waitStdin returns a context that ends when stdin reaches EOF (the demo went away) or
// ctx ends.
func waitStdin(ctx context.Context, stdin io.Reader, lines chan<- string) context.Context {
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		defer cancel()
		sc := bufio.NewScanner(stdin)
		for sc.Scan() {
			if lines != nil {
				select {
				case lines <- sc.Text():
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return ctx
}
