package harness

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

// ArtifactsEnv names the environment variable that chooses where failure
// artifacts go. Unset, they go under the system's temporary directory.
const ArtifactsEnv = "PROTOSYNOD_ARTIFACTS"

// ArtifactsDir creates a new directory for one test's artifacts, named after
// name, under $PROTOSYNOD_ARTIFACTS (created if needed) or the system's
// temporary directory.
func ArtifactsDir(name string) (string, error) {
	base := os.Getenv(ArtifactsEnv)
	if base == "" {
		base = os.TempDir()
	} else if err := os.MkdirAll(base, 0o755); err != nil {
		return "", fmt.Errorf("harness: artifacts directory: %w", err)
	}
	dir, err := os.MkdirTemp(base, "protosynod-"+sanitize(name)+"-")
	if err != nil {
		return "", fmt.Errorf("harness: artifacts directory: %w", err)
	}
	return dir, nil
}

// sanitize turns a test name into a file name.
func sanitize(name string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			return r
		default:
			return '_'
		}
	}, name)
}

// WriteArtifacts writes into dir (which must exist):
//   - linearizability.html: porcupine's visualization of the history, with
//     the longest partial linearizations and the recorder's annotations;
//   - history.txt: every operation, one per line, failed ones included;
//   - lost-writes.txt: the lost acknowledged writes, if any;
//   - logs/: copies of the sources' log files.
//
// It writes as much as it can and returns the errors it met.
func (res *Result) WriteArtifacts(dir string, logs ...LogSource) error {
	var errs []error
	info := res.info
	info.AddAnnotations(res.porcupineAnnotations())
	if err := porcupine.VisualizePath(res.model, info, filepath.Join(dir, "linearizability.html")); err != nil {
		errs = append(errs, fmt.Errorf("harness: visualization: %w", err))
	}
	if err := writeFile(filepath.Join(dir, "history.txt"), res.writeHistory); err != nil {
		errs = append(errs, err)
	}
	if len(res.Lost) > 0 {
		err := writeFile(filepath.Join(dir, "lost-writes.txt"), func(w io.Writer) error {
			for _, l := range res.Lost {
				if _, err := fmt.Fprintln(w, l); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			errs = append(errs, err)
		}
	}
	if err := copyLogs(filepath.Join(dir, "logs"), logs); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (res *Result) porcupineAnnotations() []porcupine.Annotation {
	out := make([]porcupine.Annotation, 0, len(res.annotations))
	for _, a := range res.annotations {
		tag := a.Tag
		if tag == "" {
			tag = "annotation"
		}
		out = append(out, porcupine.Annotation{
			Tag:         tag,
			Start:       int64(a.Start),
			End:         int64(a.End),
			Description: a.Description,
		})
	}
	return out
}

// writeHistory writes one line per operation in call order.
func (res *Result) writeHistory(w io.Writer) error {
	if _, err := fmt.Fprintf(w, "# %s\n# call\treturn\tprocess\tclient\tstatus\toperation\tresult\terror\n", res); err != nil {
		return err
	}
	for _, a := range res.annotations {
		if _, err := fmt.Fprintf(w, "# %v\t%v\t%s: %s\n", a.Start, a.End, a.Tag, a.Description); err != nil {
			return err
		}
	}
	for _, op := range res.ops {
		ret, result := "∞", "?"
		if op.Return != infinity {
			ret = op.Return.String()
		}
		if op.Status == StatusOK {
			switch op.Input.Kind {
			case OpRead:
				result = quoteValue(op.Output.Value)
			case OpCAS:
				result = fmt.Sprint(op.Output.OK)
			default:
				result = "ok"
			}
		}
		errText := ""
		if op.Err != nil {
			errText = op.Err.Error()
		}
		if _, err := fmt.Fprintf(w, "%v\t%s\t%d\t%d\t%v\t%v\t%s\t%s\n",
			op.Call, ret, op.Process, op.Client, op.Status, op.Input, result, errText); err != nil {
			return err
		}
	}
	return nil
}

func writeFile(path string, write func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("harness: %w", err)
	}
	bw := bufio.NewWriter(f)
	err = write(bw)
	if ferr := bw.Flush(); err == nil {
		err = ferr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("harness: write %s: %w", path, err)
	}
	return nil
}

// copyLogs copies every source's log files into dir, renaming on collision.
func copyLogs(dir string, sources []LogSource) error {
	var files []string
	for _, s := range sources {
		files = append(files, s.LogFiles()...)
	}
	if len(files) == 0 {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("harness: copy logs: %w", err)
	}
	var errs []error
	used := make(map[string]bool)
	for i, src := range files {
		name := filepath.Base(src)
		if used[name] {
			name = fmt.Sprintf("%d-%s", i, name)
		}
		used[name] = true
		if err := copyFile(filepath.Join(dir, name), src); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func copyFile(dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("harness: copy log: %w", err)
	}
	defer func() { _ = in.Close() }()
	return writeFile(dst, func(w io.Writer) error {
		_, err := io.Copy(w, in)
		return err
	})
}

// formatDuration renders d for tables: milliseconds below a second, else
// seconds with two decimals.
func formatDuration(d time.Duration) string {
	if d < time.Second {
		return d.Round(time.Millisecond).String()
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}
