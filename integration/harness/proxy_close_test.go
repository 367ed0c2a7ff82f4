package harness

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// TestProxyCloseDoesNotHang closes proxies with toxics in place while their
// connections are closing and moving data. Resetting the toxics before
// stopping the proxy could deadlock there: ResetToxics holds the toxic
// collection's lock while it waits for each link to drop the toxic, and a
// closing link waits for that lock in RemoveLink. Every close must return in
// bounded time.
func TestProxyCloseDoesNotHang(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(c, c); c.Close() }()
		}
	}()
	rounds := 20
	if testing.Short() {
		rounds = 5
	}
	for round := range rounds {
		p := &Proxy{}
		p.proxy = newToxiproxy(t, ln.Addr().String())
		if err := p.AddLatency(5*time.Millisecond, 0); err != nil {
			t.Fatal(err)
		}
		if round%2 == 1 {
			if err := p.Blackhole(); err != nil {
				t.Fatal(err)
			}
		}
		var conns []net.Conn
		for range 4 {
			c, err := net.Dial("tcp", p.Addr())
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, c)
			go func() {
				buf := make([]byte, 4096)
				for {
					if _, err := c.Write(buf); err != nil {
						return
					}
				}
			}()
			go func() { _, _ = io.Copy(io.Discard, c) }()
		}
		time.Sleep(20 * time.Millisecond)
		var wg sync.WaitGroup
		for _, c := range conns {
			wg.Go(func() { c.Close() })
		}
		done := make(chan struct{})
		go func() { p.close(t); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Fatalf("round %d: closing the proxy hung", round)
		}
		wg.Wait()
	}
}
