package procs

import (
	"context"
	"net"
	"testing"
	"time"
)

func TestNATSClusterRetriesWhenAPortIsTaken(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts nats-server processes; skipped with -short")
	}
	bin, err := BuildNATSServer(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	taken, err := net.Listen("tcp", hostPort(0))
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	attempts := 0
	pick := func(n int) ([]int, error) {
		attempts++
		ports, err := FreePorts(n)
		if err == nil && attempts == 1 {
			ports[0] = taken.Addr().(*net.TCPAddr).Port // server 0's client port
		}
		return ports, err
	}
	c, err := StartNATSCluster(t.Context(), t, 2, WithNATSServerBinary(bin), WithJetStream(true),
		func(o *natsOptions) { o.pickPorts = pick })
	if err != nil {
		t.Fatal(err)
	}
	if attempts != 2 {
		t.Errorf("picked ports %d times, want 2", attempts)
	}
	if c.ClientAddr(0) == taken.Addr().String() {
		t.Errorf("server 0 kept the taken port %s", c.ClientAddr(0))
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	// JetStream is on: the account info request gets an answer.
	nc, err := c.ConnectTo(1)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	for {
		m, err := nc.RequestWithContext(ctx, "$JS.API.INFO", nil)
		if err == nil && len(m.Data) > 0 && m.Header.Get("Nats-Service-Error-Code") == "" {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("JetStream account info: %v", err)
		}
		time.Sleep(pollInterval)
	}
}
