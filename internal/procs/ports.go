package procs

import (
	"fmt"
	"net"
)

// LoopbackHost is the address every harness process and proxy binds to.
const LoopbackHost = "127.0.0.1"

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago: it
// listens on port 0, reads the port the kernel chose and closes the listener.
// Another process may take the port before the caller binds it; starters such
// as [StartNATSCluster] retry with new ports when a bind fails.
func FreePort() (int, error) {
	ports, err := FreePorts(1)
	if err != nil {
		return 0, err
	}
	return ports[0], nil
}

// FreePorts returns n distinct free ports on 127.0.0.1. All n listeners are
// open at the same time, so the ports differ from each other; the race with
// other processes described at [FreePort] remains.
func FreePorts(n int) ([]int, error) {
	listeners := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range listeners {
			_ = l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", net.JoinHostPort(LoopbackHost, "0"))
		if err != nil {
			return nil, fmt.Errorf("procs: pick a free port: %w", err)
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// hostPort formats a loopback address.
func hostPort(port int) string {
	return net.JoinHostPort(LoopbackHost, fmt.Sprint(port))
}
