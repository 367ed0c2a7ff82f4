package main

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/protosynod/protosynod/internal/natstest"
	"github.com/protosynod/protosynod/natstransport"
	"github.com/protosynod/protosynod/synod"
)

// TestMetricsEndpoint serves three acceptors with -metrics, runs a few
// changes and scrapes one of them: every acceptor and storage instrument is
// there with plausible values.
func TestMetricsEndpoint(t *testing.T) {
	s := natstest.RunServer(t)
	var urls []string
	for _, id := range []string{"a1", "a2", "a3"} {
		logs := newSyncBuffer()
		_, done := startRun(t, logs, "-id", id, "-cluster", "c1", "-data", t.TempDir(), "-nats", s.ClientURL(), "-metrics", "127.0.0.1:0")
		logs.waitFor(t, "acceptor serving", done)
		m := regexp.MustCompile(`msg="metrics: serving" .*url=(\S+)`).FindStringSubmatch(logs.String())
		if m == nil {
			t.Fatalf("%s: no metrics URL logged:\n%s", id, logs.String())
		}
		urls = append(urls, m[1])
	}
	tr, err := natstransport.NewTransport(natstest.Connect(t, s), "c1")
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	// Every acceptor asked (not a thrifty subset), so that a1 gets every request.
	cl, err := synod.NewClient(synod.RandomProposerID("test"), synod.Config{Acceptors: []string{"a1", "a2", "a3"}}, tr, synod.WithThrifty(false))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const changes = 5
	for range changes {
		if _, err := cl.Change(ctx, "k", increment); err != nil {
			t.Fatal(err)
		}
	}
	// Garbage for the malformed counter.
	nc := natstest.Connect(t, s)
	if _, err := nc.RequestWithContext(ctx, "synod.c1.a1.accept", []byte("garbage!")); err != nil {
		t.Fatal(err)
	}

	// a1 received every accept the client sent, but on a loaded machine the
	// client may give up on a slow round and retry at a higher ballot, so some
	// of a1's answers can be refusals. Wait until a1 has answered one accept
	// per change, whatever the outcome (replies may trail the client).
	const (
		acceptOK      = `synod_acceptor_request_duration_seconds_count{acceptor="a1",op="accept",outcome="ok"}`
		acceptRefused = `synod_acceptor_request_duration_seconds_count{acceptor="a1",op="accept",outcome="refused"}`
		prepareOK     = `synod_acceptor_request_duration_seconds_count{acceptor="a1",op="prepare",outcome="ok"}`
		syncs         = `synod_storage_sync_duration_seconds_count`
	)
	count := func(body, series string) float64 { return max(sample(body, series), 0) }
	var body string
	deadline := time.Now().Add(10 * time.Second)
	for {
		body = scrape(t, urls[0])
		if count(body, acceptOK)+count(body, acceptRefused) >= changes || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	accepts := count(body, acceptOK) + count(body, acceptRefused)
	if accepts < changes {
		t.Errorf("a1 answered %v accepts, want at least %d", accepts, changes)
	}
	// Every accepted value and every promise is fsynced before its reply;
	// frames may share an fsync, but there are never more fsyncs than
	// requests (plus the one that records the acceptor's identity at start).
	applied := count(body, acceptOK) + count(body, prepareOK)
	tests := []struct {
		series   string
		min, max float64
	}{
		{acceptOK, 1, changes},
		{prepareOK, 1, changes + accepts},
		{`synod_acceptor_request_duration_seconds_sum{acceptor="a1",op="accept",outcome="ok"}`, 1e-7, 10},
		{`synod_acceptor_malformed_total{acceptor="a1",op="accept"}`, 1, 1},
		{`synod_acceptor_queue_requests{acceptor="a1"}`, 0, 0},
		{`synod_acceptor_queue_bytes{acceptor="a1"}`, 0, 0},
		{syncs, 1, applied + accepts + 1},
		{`synod_storage_sync_duration_seconds_sum`, 1e-7, 10},
		{`synod_storage_batch_size_count`, count(body, syncs), count(body, syncs)},
		// One key: the first request of a1 missed, the others hit.
		{`synod_acceptor_state_cache_lookups_total{acceptor="a1",result="miss"}`, 1, 1},
		{`synod_acceptor_state_cache_lookups_total{acceptor="a1",result="hit"}`, 1, applied + accepts},
		{`synod_acceptor_state_cache_registers{acceptor="a1"}`, 1, 1},
	}
	for _, tt := range tests {
		if got := sample(body, tt.series); got < tt.min || got > tt.max {
			t.Errorf("%s = %v, want %v..%v", tt.series, got, tt.min, tt.max)
		}
	}
	if t.Failed() {
		t.Logf("scrape:\n%s", body)
	}
}

func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// sample returns the value of the series (name and labels exactly as
// exposed, labels sorted), or -1 when it is missing.
func sample(body, series string) float64 {
	for _, line := range strings.Split(body, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err == nil {
				return v
			}
		}
	}
	return -1
}
