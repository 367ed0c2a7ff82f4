package natstransport

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/protosynod/protosynod/internal/natstest"
	"github.com/protosynod/protosynod/synod"
)

// TestBadRequestLogsRateLimited sends a burst of garbage: the service logs
// one line for it while it lasts and the count of the others when it stops,
// and each error names its package once.
func TestBadRequestLogsRateLimited(t *testing.T) {
	s := natstest.RunServer(t)
	logs := &logBuffer{}
	acc := synod.NewAcceptor("a1", synod.NewMemoryStorage())
	svc, err := Serve(context.Background(), natstest.Connect(t, s), testCluster, acc, WithLogger(newTestLogger(logs)))
	if err != nil {
		t.Fatal(err)
	}
	nc := natstest.Connect(t, s)
	prep, _ := svc.Subjects()
	const burst = 50
	start := time.Now()
	for range burst {
		if _, err := nc.RequestWithContext(ctxTimeout(t, 5*time.Second), prep, []byte("garbage!")); err != nil {
			t.Fatal(err)
		}
	}
	elapsed := time.Since(start)
	if err := svc.Stop(ctxTimeout(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	// Each line stands for itself and the "repeated" ones before it: all
	// are accounted for, in about one line per second of the burst (plus
	// the count flushed when stopping).
	lines, accounted, stopping := 0, 0, false
	for _, line := range strings.Split(out, "\n") {
		stopping = stopping || strings.Contains(line, "acceptor stopping")
		if !strings.Contains(line, `msg="natstransport: bad request"`) {
			continue
		}
		lines++
		if !stopping {
			accounted++ // a line logged during the burst is one event itself
		}
		if m := regexp.MustCompile(`repeated=(\d+)`).FindStringSubmatch(line); m != nil {
			n, _ := strconv.Atoi(m[1])
			accounted += n
		}
	}
	if maxLines := 2 + int(elapsed/failureLogInterval); lines > maxLines || lines == 0 {
		t.Errorf("%d bad-request lines for a burst of %d in %v, want 1..%d:\n%s", lines, burst, elapsed, maxLines, out)
	}
	if accounted != burst {
		t.Errorf("the lines account for %d bad requests, want %d:\n%s", accounted, burst, out)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, `msg="natstransport: bad request"`) && strings.Count(line, "natstransport:") != 2 { // msg and err
			t.Errorf("a package prefix repeats: %s", line)
		}
	}
}

func TestErrorsNamePackageOnce(t *testing.T) {
	for _, data := range [][]byte{[]byte("garbage!"), nil, make([]byte, DefaultLimits().maxMessage()+1),
		mustEncode(EncodePrepareRequest(synod.PrepareRequest{Key: "k"}))} {
		_, err := DecodePrepareRequest(data, DefaultLimits())
		if err == nil {
			t.Fatalf("decoded %q", data)
		}
		if n := strings.Count(err.Error(), "natstransport:"); n != 1 {
			t.Errorf("%q names the package %d times", err, n)
		}
	}
}
