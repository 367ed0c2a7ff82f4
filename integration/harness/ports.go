package harness

import (
	"fmt"
	"net"

	"github.com/protosynod/protosynod/internal/procs"
)

// LoopbackHost is the address every harness process and proxy binds to.
const LoopbackHost = procs.LoopbackHost

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago (see
// [procs.FreePort]).
func FreePort() (int, error) { return procs.FreePort() }

// FreePorts returns n distinct free ports on 127.0.0.1 (see
// [procs.FreePorts]).
func FreePorts(n int) ([]int, error) { return procs.FreePorts(n) }

// hostPort formats a loopback address.
func hostPort(port int) string {
	return net.JoinHostPort(LoopbackHost, fmt.Sprint(port))
}
