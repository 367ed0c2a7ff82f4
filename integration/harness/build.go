package harness

import (
	"context"

	"github.com/protosynod/protosynod/internal/procs"
)

// NATSServerPackage is the import path of the nats-server main package. The
// module pins it with a go.mod tool directive, so building it needs no
// download beyond the module cache.
const NATSServerPackage = procs.NATSServerPackage

// BuildNATSServer builds nats-server from the module's pinned version into
// dir and returns the binary's path.
func BuildNATSServer(ctx context.Context, dir string) (string, error) {
	return procs.BuildNATSServer(ctx, dir)
}

// BuildGoBinary runs `go build -o <dir>/<name> <pkg>` from the module root and
// returns the binary's path (see [procs.BuildGoBinary]).
func BuildGoBinary(ctx context.Context, dir, pkg string) (string, error) {
	return procs.BuildGoBinary(ctx, dir, pkg)
}

// ModuleRoot returns the directory holding the main module's go.mod.
func ModuleRoot(ctx context.Context) (string, error) { return procs.ModuleRoot(ctx) }

// Binaries builds Go binaries once per test binary run and hands out their
// paths (see [procs.Binaries]). Create it once per test package (see [Suite])
// and Close it when the tests are done.
type Binaries = procs.Binaries

// NewBinaries returns an empty build cache.
func NewBinaries() *Binaries { return procs.NewBinaries() }
