package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// peer is the clearing counterparty, in process, over loopback TCP: it answers
// "CONFIRM <settlement> <payments>" with "OK <settlement>", late for the slow-peer
// incident's settlement.
type peer struct {
	lis       net.Listener
	slowID    int // settlement to answer late, 0 for none
	slowDelay time.Duration
	wg        sync.WaitGroup
	mu        sync.Mutex
	conns     []net.Conn
}

func startPeer(ctx context.Context, slowID int, slowDelay time.Duration) (*peer, error) {
	var lc net.ListenConfig
	lis, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("starting clearing peer: %w", err)
	}
	p := &peer{lis: lis, slowID: slowID, slowDelay: slowDelay}
	p.wg.Go(p.accept)
	return p, nil
}

func (p *peer) addr() string { return p.lis.Addr().String() }

func (p *peer) accept() {
	for {
		c, err := p.lis.Accept()
		if err != nil {
			return // closed
		}
		p.mu.Lock()
		p.conns = append(p.conns, c)
		p.mu.Unlock()
		p.wg.Go(func() { p.serve(c) })
	}
}

func (p *peer) serve(c net.Conn) {
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		f := strings.Fields(line)
		if len(f) != 3 || f[0] != "CONFIRM" {
			fmt.Fprintf(c, "ERR bad request\n")
			continue
		}
		if id, _ := strconv.Atoi(f[1]); id == p.slowID && p.slowID != 0 {
			time.Sleep(p.slowDelay) // the counterparty is slow: a real wait on the socket
		}
		if _, err := fmt.Fprintf(c, "OK %s\n", f[1]); err != nil {
			return
		}
	}
}

func (p *peer) close() {
	p.lis.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}
