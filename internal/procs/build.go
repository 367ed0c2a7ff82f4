package procs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
)

// NATSServerPackage is the import path of the nats-server main package. The
// module pins it with a go.mod tool directive, so building it needs no
// download beyond the module cache.
const NATSServerPackage = "github.com/nats-io/nats-server/v2"

// BuildNATSServer builds nats-server from the module's pinned version into
// dir and returns the binary's path.
func BuildNATSServer(ctx context.Context, dir string) (string, error) {
	return BuildGoBinary(ctx, dir, NATSServerPackage)
}

// BuildGoBinary runs `go build -o <dir>/<name> <pkg>` from the module root and
// returns the binary's path. pkg is an import path or a path relative to the
// module root such as "./cmd/synod-acceptor". The binary is named after the
// package's last path element, skipping a major-version suffix ("/v2").
func BuildGoBinary(ctx context.Context, dir, pkg string) (string, error) {
	root, err := ModuleRoot(ctx)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("procs: build %s: %w", pkg, err)
	}
	out := filepath.Join(dir, binaryName(pkg))
	goTool, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("procs: build %s: find the go command: %w", pkg, err)
	}
	cmd := exec.CommandContext(ctx, goTool, "build", "-o", out, pkg)
	cmd.Dir = root
	var output bytes.Buffer
	cmd.Stdout = &output
	cmd.Stderr = &output
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("procs: go build %s: %w\n%s", pkg, err, output.Bytes())
	}
	return out, nil
}

// binaryName names the binary built from pkg: its last path element, or the
// one before it when the last is a major-version suffix such as "v2".
func binaryName(pkg string) string {
	p := path.Clean(filepath.ToSlash(pkg))
	base := path.Base(p)
	if isMajorVersion(base) {
		if parent := path.Base(path.Dir(p)); parent != "." && parent != "/" {
			base = parent
		}
	}
	return base
}

func isMajorVersion(s string) bool {
	if len(s) < 2 || s[0] != 'v' {
		return false
	}
	for _, r := range s[1:] {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// ModuleRoot returns the directory holding the main module's go.mod. It asks
// `go env GOMOD` and falls back to walking up from the working directory.
func ModuleRoot(ctx context.Context) (string, error) {
	if goTool, err := exec.LookPath("go"); err == nil {
		out, err := exec.CommandContext(ctx, goTool, "env", "GOMOD").Output()
		if err == nil {
			gomod := strings.TrimSpace(string(out))
			if gomod != "" && gomod != os.DevNull {
				return filepath.Dir(gomod), nil
			}
		}
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("procs: find module root: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("procs: find module root: no go.mod above the working directory")
		}
		dir = parent
	}
}

// Binaries builds Go binaries once per test binary run and hands out their
// paths. It is safe for concurrent use; concurrent requests for the same
// package wait for one build. A failed build is not cached, so a later call
// tries again. Create it once per test package (see [Suite]) and Close it when
// the tests are done.
type Binaries struct {
	mu     sync.Mutex
	dir    string // created on first build
	builds map[string]*build
}

type build struct {
	dir  string
	mu   sync.Mutex
	path string // set once the build succeeded
}

// NewBinaries returns an empty build cache. Binaries go into a temporary
// directory created on the first build and removed by Close.
func NewBinaries() *Binaries {
	return &Binaries{builds: make(map[string]*build)}
}

// NATSServer returns the path of the pinned nats-server binary, building it on
// first use.
func (b *Binaries) NATSServer(ctx context.Context) (string, error) {
	return b.Go(ctx, NATSServerPackage)
}

// Go returns the path of the binary built from pkg (see [BuildGoBinary]),
// building it on first use. Packages with the same binary name get separate
// directories, so they do not overwrite each other.
func (b *Binaries) Go(ctx context.Context, pkg string) (string, error) {
	b.mu.Lock()
	if b.dir == "" {
		dir, err := os.MkdirTemp("", "protosynod-bin-")
		if err != nil {
			b.mu.Unlock()
			return "", fmt.Errorf("procs: build cache: %w", err)
		}
		b.dir = dir
	}
	e, ok := b.builds[pkg]
	if !ok {
		e = &build{dir: filepath.Join(b.dir, fmt.Sprintf("%03d", len(b.builds)))}
		b.builds[pkg] = e
	}
	b.mu.Unlock()

	e.mu.Lock()
	defer e.mu.Unlock()
	if e.path != "" {
		return e.path, nil
	}
	p, err := BuildGoBinary(ctx, e.dir, pkg)
	if err != nil {
		return "", err
	}
	e.path = p
	return p, nil
}

// Close removes the built binaries.
func (b *Binaries) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dir == "" {
		return nil
	}
	err := os.RemoveAll(b.dir)
	b.dir = ""
	b.builds = make(map[string]*build)
	if err != nil {
		return fmt.Errorf("procs: remove build cache: %w", err)
	}
	return nil
}
