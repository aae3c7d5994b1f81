// Command goclient is the Go twin of client.c for the replay tests: the rate file is read
// by one goroutine while another talks to the peer, so the calls come from several
// threads of the runtime.
package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: goclient HOST:PORT RATEFILE")
		os.Exit(2)
	}
	var (
		wg      sync.WaitGroup
		rate    float64
		rateErr error
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		b, err := os.ReadFile(os.Args[2])
		if err != nil {
			rateErr = err
			return
		}
		rate, rateErr = strconv.ParseFloat(strings.TrimSpace(string(b)), 64)
	}()
	c, err := net.Dial("tcp", os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "goclient:", err)
		os.Exit(4)
	}
	r := bufio.NewReader(c)
	req, err := r.ReadString('\n')
	if err != nil {
		fmt.Fprintln(os.Stderr, "goclient: reading the request:", err)
		os.Exit(5)
	}
	amount, err := strconv.Atoi(strings.TrimPrefix(strings.TrimSpace(req), "amount="))
	if err != nil {
		fmt.Fprintln(os.Stderr, "goclient: bad request", req)
		os.Exit(7)
	}
	wg.Wait()
	if rateErr != nil {
		fmt.Fprintln(os.Stderr, "goclient: rate:", rateErr)
		os.Exit(8)
	}
	out := fmt.Sprintf("result=%.2f\n", float64(amount)*rate)
	if _, err := c.Write([]byte(out)); err != nil {
		fmt.Fprintln(os.Stderr, "goclient: sending the result:", err)
		os.Exit(10)
	}
	ack, err := r.ReadString('\n')
	if err != nil || ack != "ok\n" {
		fmt.Fprintln(os.Stderr, "goclient: no ack:", err)
		os.Exit(11)
	}
	c.Close()
	fmt.Printf("settled amount=%d %s", amount, out)
}
