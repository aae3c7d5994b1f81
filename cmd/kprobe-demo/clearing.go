package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The clearing path is two TCP hops: the settlement service confirms with the clearing
// gateway, which only forwards to the bank, which answers. For the slow-peer incident the
// bank sits on one settlement's request: the time is spent two hops away, behind a
// gateway that did nothing wrong.

// serveGateway: clearing-gw --upstream ADDR. Prints "listening addr=A", then forwards
// each client line to the bank and the bank's reply back.
func serveGateway(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet(roleGateway, flag.ContinueOnError)
	upstream := fs.String("upstream", "", "the bank's address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	return listen(ctx, stdout, func(c net.Conn) {
		var d net.Dialer
		up, err := d.DialContext(ctx, "tcp", *upstream)
		if err != nil {
			fmt.Fprintf(c, "ERR bank unreachable\n")
			return
		}
		defer up.Close()
		in, back := bufio.NewReader(c), bufio.NewReader(up)
		for {
			line, err := in.ReadString('\n')
			if err != nil {
				return
			}
			if _, err := io.WriteString(up, line); err != nil {
				return
			}
			reply, err := back.ReadString('\n')
			if err != nil {
				return
			}
			if _, err := io.WriteString(c, reply); err != nil {
				return
			}
		}
	})
}

// serveBank: bank-sim [--slow-settlement N --delay D]. Answers "CONFIRM <id> <n>" with
// "OK <id>", late for the slow settlement.
func serveBank(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet(roleBank, flag.ContinueOnError)
	slow := fs.Int("slow-settlement", 0, "settlement to answer late (0: none)")
	delay := fs.Duration("delay", 0, "how late")
	if err := fs.Parse(args); err != nil {
		return err
	}
	return listen(ctx, stdout, func(c net.Conn) {
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
			if id, _ := strconv.Atoi(f[1]); id == *slow && *slow != 0 {
				time.Sleep(*delay) // the bank sits on the request: a real wait on the socket
			}
			if _, err := fmt.Fprintf(c, "OK %s\n", f[1]); err != nil {
				return
			}
		}
	})
}

// listen serves connections on a loopback port until ctx ends, after printing its
// address.
func listen(ctx context.Context, stdout io.Writer, serve func(net.Conn)) error {
	var lc net.ListenConfig
	lis, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listening: %w", err)
	}
	if _, err := fmt.Fprintf(stdout, "listening addr=%s\n", lis.Addr()); err != nil {
		return err
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		<-ctx.Done()
		lis.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	}()
	for {
		c, err := lis.Accept()
		if err != nil {
			wg.Wait()
			return nil // closed
		}
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
		wg.Go(func() { defer c.Close(); serve(c) })
	}
}
